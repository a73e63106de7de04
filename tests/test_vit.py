"""The plain-torch image backbones (wsris.backbones.vit) against timm: same parameter names
and shapes, same outputs; and a bundled-model segment that imports neither timm nor
anything else it does not need."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from wsris.backbones.efficientnet import efficientnet_lite0_stride8
from wsris.backbones.vit import VisionTransformer


@pytest.mark.parametrize("class_pool", ["token", ""])
def test_vit_matches_timm(class_pool):
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    kwargs = dict(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3,
                  mlp_ratio=2.0, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    ref = TimmViT(num_classes=0, global_pool=class_pool, **kwargs).eval()
    ours = VisionTransformer(**kwargs).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.forward_features(x), ref.forward_features(x))


def test_vit_drop_path_only_in_training():
    vit = VisionTransformer(img_size=16, patch_size=8, embed_dim=8, depth=2, num_heads=2,
                            drop_path_rate=0.5)
    x = torch.randn(4, 3, 16, 16)
    vit.eval()
    torch.testing.assert_close(vit(x), vit(x))
    vit.train()
    torch.manual_seed(0)
    assert not torch.equal(vit(x), vit(x))


def test_efficientnet_stem_matches_timms_first_three_stages():
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    ref = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:3])
    ours = efficientnet_lite0_stride8().eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()}
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in ref.state_dict().items()}
    state = {k: v.abs() if "running_var" in k else v for k, v in state.items()}
    ref.load_state_dict(state)
    ours.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = ours(x)
        assert out.shape == (2, 40, 8, 8)
        torch.testing.assert_close(out, ref(x))


_PROBE = """
import json, sys
import wsris
seg = wsris.load(sys.argv[1], device="cpu")
seg.segment(sys.argv[2], "the large red circle")
heavy = ("timm", "torchvision", "torch._dynamo", "sympy", "transformers", "spacy",
         "matplotlib", "scipy.cluster")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["albef-chunk-shapes", "sag-shapes"])
def test_segment_imports_only_what_the_method_needs(model):
    example = Path(__file__).resolve().parents[1] / "examples" / "shapes_scene.png"
    proc = subprocess.run([sys.executable, "-c", _PROBE, model, str(example)],
                          capture_output=True, text=True, timeout=600, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
