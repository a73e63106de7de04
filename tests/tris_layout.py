"""Official TRIS checkpoints with random weights, and TRIS's forward written from the
official definitions (``model/model_stage1.py``, ``model/model_stage2.py``,
``model/attn.py``, CLIP's ``model.py``) as plain tensor functions over the raw state
dict: an independent reference for the converted wsris model.

The key names and shapes below are enumerated from those definitions (CLIP's
``ModifiedResNet``, ``AttentionPool2d`` and text ``Transformer``; TRIS's heads), not
taken from wsris's modules. The reference follows the official computation order: one
text per call (TRIS validates with batch size 1), attention pool left out (its output is
unused), LayerNorm and BatchNorm with torch's default eps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Dims:
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64  # vision width: c1..c4 have 4w, 8w, 16w, 32w channels
    embed: int = 1024
    vocab: int = 49408
    context: int = 77
    text_width: int = 512
    text_layers: int = 12
    hidden: int = 1024
    attn_grid: int = 7  # CLIP RN50 at 224 px: a 7 x 7 attention-pool table

    @property
    def heads(self) -> int:
        return max(1, self.text_width // 64)


RN50 = Dims()
TINY = Dims(layers=(1, 1, 1, 1), width=8, embed=32, text_width=64, text_layers=1, hidden=16,
            attn_grid=2)


def _bn(p: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,),
            f"{p}.running_var": (c,), f"{p}.num_batches_tracked": ()}


def clip_shapes(d: Dims) -> dict[str, tuple[int, ...]]:
    """CLIP RN50's state dict under TRIS's ``backbone.`` prefix."""
    s: dict[str, tuple[int, ...]] = {}
    v = "backbone.visual"
    w = d.width
    s[f"{v}.conv1.weight"] = (w // 2, 3, 3, 3)
    s.update(_bn(f"{v}.bn1", w // 2))
    s[f"{v}.conv2.weight"] = (w // 2, w // 2, 3, 3)
    s.update(_bn(f"{v}.bn2", w // 2))
    s[f"{v}.conv3.weight"] = (w, w // 2, 3, 3)
    s.update(_bn(f"{v}.bn3", w))
    inplanes = w
    for i, blocks in enumerate(d.layers):
        planes = w * 2**i
        for j in range(blocks):
            p = f"{v}.layer{i + 1}.{j}"
            s[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            s.update(_bn(f"{p}.bn1", planes))
            s[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            s.update(_bn(f"{p}.bn2", planes))
            s[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            s.update(_bn(f"{p}.bn3", planes * 4))
            if j == 0:  # stride 2 (layers 2-4) or inplanes != 4 planes (layer 1)
                s[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                s.update(_bn(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    c = w * 32
    s[f"{v}.attnpool.positional_embedding"] = (d.attn_grid**2 + 1, c)
    for name in ("q_proj", "k_proj", "v_proj"):
        s[f"{v}.attnpool.{name}.weight"] = (c, c)
        s[f"{v}.attnpool.{name}.bias"] = (c,)
    s[f"{v}.attnpool.c_proj.weight"] = (d.embed, c)
    s[f"{v}.attnpool.c_proj.bias"] = (d.embed,)
    t = d.text_width
    for k in range(d.text_layers):
        p = f"backbone.transformer.resblocks.{k}"
        s[f"{p}.attn.in_proj_weight"] = (3 * t, t)
        s[f"{p}.attn.in_proj_bias"] = (3 * t,)
        s[f"{p}.attn.out_proj.weight"] = (t, t)
        s[f"{p}.attn.out_proj.bias"] = (t,)
        for ln in ("ln_1", "ln_2"):
            s[f"{p}.{ln}.weight"] = (t,)
            s[f"{p}.{ln}.bias"] = (t,)
        s[f"{p}.mlp.c_fc.weight"] = (4 * t, t)
        s[f"{p}.mlp.c_fc.bias"] = (4 * t,)
        s[f"{p}.mlp.c_proj.weight"] = (t, 4 * t)
        s[f"{p}.mlp.c_proj.bias"] = (t,)
    s["backbone.positional_embedding"] = (d.context, t)
    s["backbone.text_projection"] = (t, d.embed)
    s["backbone.logit_scale"] = ()
    s["backbone.token_embedding.weight"] = (d.vocab, t)
    s["backbone.ln_final.weight"] = (t,)
    s["backbone.ln_final.bias"] = (t,)
    return s


def stage1_shapes(d: Dims, bilateral: bool = True) -> dict[str, tuple[int, ...]]:
    s = clip_shapes(d)
    h = d.hidden
    s.update({"vis_project.weight": (h, d.width * 32, 1, 1), "vis_project.bias": (h,),
              "lan_project.weight": (h, d.embed), "lan_project.bias": (h,), "logit_scale": ()})
    if bilateral:
        for i in (1, 2, 3):
            s[f"attn_fusion.v_proj{i}.0.weight"] = (h, h, 1, 1)
            s[f"attn_fusion.v_proj{i}.0.bias"] = (h,)
            s[f"attn_fusion.v_proj{i}.1.weight"] = (h,)
            s[f"attn_fusion.v_proj{i}.1.bias"] = (h,)
            s[f"attn_fusion.t_proj{i}.0.weight"] = (h, h)
            s[f"attn_fusion.t_proj{i}.0.bias"] = (h,)
        a = "attn_fusion"
        s.update({f"{a}.v_output.0.weight": (h, h, 1, 1), f"{a}.v_output.0.bias": (h,),
                  f"{a}.v_output.1.weight": (h,), f"{a}.v_output.1.bias": (h,),
                  f"{a}.t_output.0.weight": (h, h), f"{a}.t_output.0.bias": (h,)})
    return s


def _cbr(p: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    return {f"{p}.conv.weight": (cout, cin, 3, 3), **_bn(f"{p}.bn", cout), f"{p}.relu.weight": (1,)}


def stage2_shapes(d: Dims) -> dict[str, tuple[int, ...]]:
    s = clip_shapes(d)
    w, t = d.width, d.text_width
    for k, ci in ((2, 8 * w), (3, 16 * w), (4, 32 * w)):
        p = f"attention{k}"
        for name in ("Wk", "Wv"):
            s[f"{p}.{name}.weight"] = (ci, t, 1)
            s[f"{p}.{name}.bias"] = (ci,)
        for name in ("Wq", "Wm", "Ww", "Wo"):
            s[f"{p}.{name}.weight"] = (ci, ci, 1, 1)
            s[f"{p}.{name}.bias"] = (ci,)
        for name in ("ins_q", "ins_w"):
            s[f"{p}.{name}.weight"] = (ci,)
            s[f"{p}.{name}.bias"] = (ci,)
    for k, (cin, cout) in enumerate(((4 * w, 64), (8 * w, 128), (16 * w, 256), (32 * w, 512)), 1):
        s.update(_cbr(f"reduced_c{k}", cin, cout))
    for k, (cin, cout) in {4: (512, 256), 3: (256, 128), 2: (128, 64), 1: (64, 32)}.items():
        s.update(_cbr(f"output{k}", cin, cout))
    for k, (cin, mid) in {1: (32, 32), 2: (64, 32), 3: (128, 64), 4: (256, 64)}.items():
        s.update(_cbr(f"final_seg{k}.0", cin, mid))
        s[f"final_seg{k}.1.weight"] = (1, mid, 1, 1)
    return s


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values that keep activations in range: weights ~ N(0, 1/fan_in), norms near
    one, running variances in [0.5, 1.5], biases small."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("logit_scale"):
            out[key] = torch.tensor(math.log(1 / 0.07))
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        elif len(shape) == 1 and key.endswith("weight") and "relu" not in key:
            # norm scales (BatchNorm, LayerNorm, InstanceNorm): near one
            out[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(shape, generator=g)
    if "backbone.positional_embedding" in out:
        out["backbone.positional_embedding"] *= 0.1
    return out


# ------------------------------------------------------------------ the reference forward


def _bnf(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False)


def ref_visual(sd: dict, d: Dims, x: torch.Tensor) -> list[torch.Tensor]:
    v = "backbone.visual"
    x = F.relu(_bnf(sd, f"{v}.bn1", F.conv2d(x, sd[f"{v}.conv1.weight"], stride=2, padding=1)))
    x = F.relu(_bnf(sd, f"{v}.bn2", F.conv2d(x, sd[f"{v}.conv2.weight"], padding=1)))
    x = F.relu(_bnf(sd, f"{v}.bn3", F.conv2d(x, sd[f"{v}.conv3.weight"], padding=1)))
    x = F.avg_pool2d(x, 2)
    outs = []
    for i, blocks in enumerate(d.layers):
        for j in range(blocks):
            p = f"{v}.layer{i + 1}.{j}"
            stride = 2 if (i > 0 and j == 0) else 1
            out = F.relu(_bnf(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
            out = F.relu(_bnf(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1)))
            if stride > 1:
                out = F.avg_pool2d(out, stride)
            out = _bnf(sd, f"{p}.bn3", F.conv2d(out, sd[f"{p}.conv3.weight"]))
            identity = x
            if f"{p}.downsample.0.weight" in sd:
                if stride > 1:
                    identity = F.avg_pool2d(identity, stride)
                identity = _bnf(sd, f"{p}.downsample.1",
                                F.conv2d(identity, sd[f"{p}.downsample.0.weight"]))
            x = F.relu(out + identity)
        outs.append(x)
    return outs


def ref_text(sd: dict, d: Dims, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = d.text_width
    length = ids.shape[1]
    x = sd["backbone.token_embedding.weight"][ids] + sd["backbone.positional_embedding"][:length]
    x = x.permute(1, 0, 2)  # L, N, D as CLIP runs its transformer
    mask = torch.empty(length, length).fill_(float("-inf")).triu_(1)
    for k in range(d.text_layers):
        p = f"backbone.transformer.resblocks.{k}"
        h = F.layer_norm(x, (t,), sd[f"{p}.ln_1.weight"], sd[f"{p}.ln_1.bias"])
        a, _ = F.multi_head_attention_forward(
            h, h, h, t, d.heads, sd[f"{p}.attn.in_proj_weight"], sd[f"{p}.attn.in_proj_bias"],
            None, None, False, 0.0, sd[f"{p}.attn.out_proj.weight"], sd[f"{p}.attn.out_proj.bias"],
            training=False, need_weights=False, attn_mask=mask)
        x = x + a
        h = F.layer_norm(x, (t,), sd[f"{p}.ln_2.weight"], sd[f"{p}.ln_2.bias"])
        h = F.linear(h, sd[f"{p}.mlp.c_fc.weight"], sd[f"{p}.mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)
        x = x + F.linear(h, sd[f"{p}.mlp.c_proj.weight"], sd[f"{p}.mlp.c_proj.bias"])
    x = F.layer_norm(x.permute(1, 0, 2), (t,), sd["backbone.ln_final.weight"],
                     sd["backbone.ln_final.bias"])
    hidden = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ sd["backbone.text_projection"]
    return x, hidden


def _inorm(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, weight=sd[f"{p}.weight"], bias=sd[f"{p}.bias"])


def ref_stage1(sd: dict, d: Dims, img: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``model_stage1.TRIS.forward`` in eval mode for one image and one text ``[1, L]``."""
    _, hidden = ref_text(sd, d, ids)
    c4 = ref_visual(sd, d, img)[3]
    lan = F.linear(hidden, sd["lan_project.weight"], sd["lan_project.bias"])
    vis = F.conv2d(c4, sd["vis_project.weight"], sd["vis_project.bias"])
    b, _, h_, w_ = vis.shape
    vis_t = vis.flatten(2).transpose(1, 2)
    lan = lan.unsqueeze(0).repeat(b, 1, 1)
    nv = vis_t / vis_t.norm(dim=-1, keepdim=True)
    nl = lan / lan.norm(dim=-1, keepdim=True)
    if "attn_fusion.t_output.0.weight" in sd:
        a = "attn_fusion"
        vis_in = nv.permute(0, 2, 1).reshape(b, -1, h_, w_)
        lan_in = nl  # [B, T, C] (the official code transposes twice)
        c = lan_in.shape[-1]

        def vp(i):
            y = F.conv2d(vis_in, sd[f"{a}.v_proj{i}.0.weight"], sd[f"{a}.v_proj{i}.0.bias"])
            return F.relu(_inorm(sd, f"{a}.v_proj{i}.1", y))

        def tp(i):
            y = F.linear(lan_in, sd[f"{a}.t_proj{i}.0.weight"], sd[f"{a}.t_proj{i}.0.bias"])
            return F.relu(y)

        qv, kv, vv = vp(1), vp(2), vp(3)
        qt, kt, vt = tp(1), tp(2), tp(3)
        qv = qv.reshape(b, c, -1).transpose(1, 2)
        av = F.softmax(qv.matmul(kt.transpose(1, 2)) / math.sqrt(c), dim=2)
        at = F.softmax(qt.matmul(kv.reshape(b, c, -1)) / math.sqrt(c), dim=2)
        new_vis = av.matmul(vt).permute(0, 2, 1).reshape(b, c, h_, w_)
        new_lan = at.matmul(vv.reshape(b, c, -1).transpose(1, 2))
        new_vis = _inorm(sd, f"{a}.v_output.1", F.conv2d(new_vis, sd[f"{a}.v_output.0.weight"],
                                                         sd[f"{a}.v_output.0.bias"]))
        new_lan = F.linear(new_lan, sd[f"{a}.t_output.0.weight"], sd[f"{a}.t_output.0.bias"])
        nv = new_vis.flatten(2).transpose(1, 2) * 0.1 + nv
        nl = new_lan * 0.1 + nl
    score = torch.bmm(nv, nl.transpose(1, 2)) * sd["logit_scale"].exp()
    maps = score[0, :, 0].view(1, 1, h_, w_)
    up = F.interpolate(maps, size=img.shape[2:], mode="bilinear", align_corners=False)
    return F.relu(up)


def _cbrf(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    y = _bnf(sd, f"{p}.bn", F.conv2d(x, sd[f"{p}.conv.weight"], padding=1))
    return F.prelu(y, sd[f"{p}.relu.weight"])


def _pixel_attention(sd: dict, p: str, vis: torch.Tensor, lan: torch.Tensor) -> torch.Tensor:
    n, ci, h, w = vis.shape
    lk = F.conv1d(lan, sd[f"{p}.Wk.weight"], sd[f"{p}.Wk.bias"])
    lv = F.conv1d(lan, sd[f"{p}.Wv.weight"], sd[f"{p}.Wv.bias"])
    vq = _inorm(sd, f"{p}.ins_q", F.conv2d(vis, sd[f"{p}.Wq.weight"], sd[f"{p}.Wq.bias"]))
    vq = vq.view(n, ci, h * w).permute(0, 2, 1)
    attn = F.softmax(vq.matmul(lk) / math.sqrt(ci), dim=2)
    g = attn.matmul(lv.permute(0, 2, 1)).permute(0, 2, 1).reshape(n, ci, h, w)
    gi = _inorm(sd, f"{p}.ins_w", F.conv2d(g, sd[f"{p}.Ww.weight"], sd[f"{p}.Ww.bias"]))
    vo = F.relu(F.conv2d(vis, sd[f"{p}.Wm.weight"], sd[f"{p}.Wm.bias"]))
    return F.relu(F.conv2d(vo * gi, sd[f"{p}.Wo.weight"], sd[f"{p}.Wo.bias"]))


def ref_stage2(sd: dict, d: Dims, img: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``model_stage2.TRIS.forward`` in eval mode: the logits ``[1, 1, H, W]``."""
    words, _ = ref_text(sd, d, ids)
    c1, c2, c3, c4 = ref_visual(sd, d, img)
    lan = words.permute(0, 2, 1)
    f2 = _pixel_attention(sd, "attention2", c2, lan) + c2
    f3 = _pixel_attention(sd, "attention3", c3, lan) + c3
    f4 = _pixel_attention(sd, "attention4", c4, lan) + c4
    d1, d2 = _cbrf(sd, "reduced_c1", c1), _cbrf(sd, "reduced_c2", f2)
    d3, d4 = _cbrf(sd, "reduced_c3", f3), _cbrf(sd, "reduced_c4", f4)

    def up(x, size):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    s4 = up(_cbrf(sd, "output4", d4), d3.shape[2:])
    s3 = up(_cbrf(sd, "output3", s4 + d3), d2.shape[2:])
    s2 = up(_cbrf(sd, "output2", s3 + d2), d1.shape[2:])
    s1 = _cbrf(sd, "output1", s2 + d1)
    out = F.conv2d(_cbrf(sd, "final_seg1.0", s1), sd["final_seg1.1.weight"])
    return up(out, img.shape[2:])


def ref_mask(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``validate.py``'s mask of one output ``[1, 1, h, w]`` at the original ``size``."""
    pred = F.interpolate(maps, size, align_corners=True, mode="bilinear").squeeze(0)
    pred = pred / (F.adaptive_max_pool2d(pred, (1, 1)) + 1e-5)
    return pred.squeeze(0).gt(1e-9)


def save_official(path, shapes: dict, seed: int = 0, wrapped: bool = True) -> dict:
    """Write an official-layout checkpoint (as ``save_checkpoint`` writes it) and return
    its state dict."""
    sd = random_state(shapes, seed)
    obj = {"model": sd, "optimizer": {"state": {}, "param_groups": []},
           "lr_scheduler": {"last_epoch": 3}, "epoch": 3} if wrapped else sd
    torch.save(obj, path)
    return sd
