# ruff: noqa: E501  (the cell texts below keep their notebook line lengths)
"""Write notebooks/0*.ipynb from the cell sources below (outputs cleared).

    python scripts/build_notebooks.py

The notebooks are committed without outputs; the test command (`make test`) executes
every one of them with nbmake, so their outputs are regenerated on each run. Edit the
cells here, not in the .ipynb files, and re-run this script.

Over 500 lines because it holds the text of every cell of all five notebooks, in order;
the code around them is short.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks"

SETUP = '''\
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import wsris

# the repository root (this notebook lives in notebooks/), for the bundled example image
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "examples").is_dir())
IMAGE = ROOT / "examples" / "shapes_scene.png"
MASK_COLOUR = (255, 0, 255)  # magenta: Shapes-Ref has red objects'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


QUICKSTART = [
    md("""
# 01 · Quickstart

Load a bundled model, segment one image with several referring expressions, look at the
masks and the heat map behind them, save the masks, and do the same from the command
line. Everything runs on the CPU in a few seconds.
"""),
    code(SETUP),
    md("## Install check\nWhich versions are installed, whether a GPU is visible, and which models the manifest knows."),
    code('''
import torch

print("wsris", wsris.__version__, "| torch", torch.__version__,
      "| CUDA available:", torch.cuda.is_available())
print("models:", ", ".join(wsris.list_models()))'''),
    md("## Load a model and segment\n`wsris.load` takes a manifest name, a model folder, or `hf-hub:org/repo@rev`. "
       "A list of texts encodes the image once."),
    code('''
seg = wsris.load("sag-shapes")
print(seg)
texts = ["the large red circle", "the small cyan circle", "the large red square",
         "the small blue triangle"]
results = seg.segment(IMAGE, texts)
for r in results:
    print(f"{r.text!r:28} area {r.area:6d} px  bbox xywh {r.bbox}  score {r.score:.3f}")'''),
    md("## Encode once, ask many\nAn interactive user asks one phrase at a time. `seg.encode(image)` runs the "
       "image side (the image encoder; for chunk models also the mask proposals) once; every "
       "`seg.segment(encoded, text)` after it reuses that work and gives exactly the result of "
       "`seg.segment(image, text)`."),
    code('''
import time

encoded = seg.encode(IMAGE)
print(encoded)
t0 = time.perf_counter()
one_by_one = [seg.segment(encoded, t) for t in texts]
t_encoded = time.perf_counter() - t0
t0 = time.perf_counter()
raw = [seg.segment(IMAGE, t) for t in texts]
t_raw = time.perf_counter() - t0
for a, b in zip(one_by_one, raw, strict=True):
    assert np.array_equal(a.mask, b.mask) and np.array_equal(a.heatmap, b.heatmap)
print(f"{len(texts)} phrases one at a time: {t_raw:.3f} s on the raw image, "
      f"{t_encoded:.3f} s on the encoded one (after the encode); identical results")'''),
    md("## Overlays side by side\nThe mask is at the original image size; `overlay()` tints it and draws its outline."),
    code('''
fig, axes = plt.subplots(1, len(results) + 1, figsize=(3.2 * (len(results) + 1), 3.4))
axes[0].imshow(results[0].image)
axes[0].set_title("input")
for ax, r in zip(axes[1:], results, strict=True):
    ax.imshow(r.overlay(color=MASK_COLOUR))
    ax.set_title(r.text, fontsize=9)
for ax in axes:
    ax.axis("off")
fig.suptitle(f"{seg.name}: one mask per expression")
plt.tight_layout()
plt.show()'''),
    md("## The heat map behind a mask\nThe mask is this [0, 1] map thresholded at the model's default (`seg.threshold`)."),
    code('''
r = results[0]
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
axes[0].imshow(r.image)
im = axes[0].imshow(r.heatmap, cmap="jet", alpha=0.5, vmin=0, vmax=1)
axes[0].set_title(f"heat map: {r.text!r}", fontsize=9)
fig.colorbar(im, ax=axes[0], fraction=0.046, label="localisation score")
axes[1].imshow(r.overlay(color=MASK_COLOUR))
axes[1].set_title(f"mask (heat map >= {r.threshold})", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()'''),
    md("## Save the masks\n`save()` writes a PNG (255 inside the mask) that reads back to the same mask."),
    code('''
import tempfile

from PIL import Image

out = Path(tempfile.mkdtemp())
for i, r in enumerate(results):
    path = r.save(out / f"mask_{i}.png")
    back = np.asarray(Image.open(path)) > 127
    assert (back == r.mask).all()
print(sorted(p.name for p in out.iterdir()))'''),
    md("## The same in three CLI lines\n"
       "```\nwsris models\nwsris segment examples/shapes_scene.png \"the large red circle\" -m sag-shapes "
       "--overlay overlay.png\nwsris segment examples/shapes_scene.png \"red circle\" \"cyan circle\" "
       "-m sag-shapes --json\n```\nRun here through the Python that runs this notebook:"),
    code('''
import json
import subprocess
import sys

cli = [sys.executable, "-m", "wsris.cli"]
print(subprocess.run([*cli, "models"], capture_output=True, text=True, check=True).stdout)
done = subprocess.run([*cli, "segment", str(IMAGE), "the large red circle", "-m", "sag-shapes",
                       "-o", str(out / "cli_mask.png"), "--overlay", str(out / "cli_overlay.png")],
                      capture_output=True, text=True, check=True)
print(done.stdout)
assert (out / "cli_mask.png").is_file() and (out / "cli_overlay.png").is_file()
both = subprocess.run([*cli, "segment", str(IMAGE), "red circle", "cyan circle", "-m", "sag-shapes",
                       "-o", str(out / "cli.png"), "--json"],
                      capture_output=True, text=True, check=True).stdout
print(both)
assert [e["text"] for e in json.loads(both)["results"]] == ["red circle", "cyan circle"]
# outputs are never overwritten silently: the same command again is refused (exit 11)
again = subprocess.run([*cli, "segment", str(IMAGE), "red circle", "-m", "sag-shapes",
                        "-o", str(out / "cli_mask.png")], capture_output=True, text=True)
print(again.stderr)
assert again.returncode == 11 and "--overwrite" in again.stderr'''),
]

CHUNK = [
    md("""
# 02 · The chunk method, opened up

Lee et al. 2023 on the bundled `albef-chunk-shapes` model, one stage at a time:

1. Grad-CAM of the image-text matching score over one cross-attention map, **one map per
   word** (the paper's Figure 1a);
2. the per-word maps **averaged** into one map;
3. **affinity refinement** with the ViT's self-attention (Eq. 7);
4. unsupervised **mask proposals** (an MCG stand-in) and the one that best overlaps the
   map (tau = 0.3), which becomes the mask.

Then the effect of each stage on a small evaluation. The bundled model's own defaults
depart from the paper (Grad-CAM averaged with [CLS], no affinity, proposals chosen by the
mean map inside: see docs/results.md); this notebook asks for the paper's settings
explicitly.
"""),
    code(SETUP),
    code('''
seg = wsris.load("albef-chunk-shapes")
text = "the large red circle"
PAPER = {"stages": ["gradcam", "affinity", "proposals"], "average": "words",
         "proposal_select": "iou", "max_proposals": 200}
r = seg.segment(IMAGE, text, **PAPER)
st = r.stages
print(seg, "| ITM match probability", round(r.score, 3))
print("words:", st["words"], "| Grad-CAM layer", st["gradcam_layer"],
      "| affinity from ViT block", st.get("affinity_layer"))
assert st["words"] and set(st["words"]) <= set(text.split())
assert len(st["word_maps"]) == len(st["words"]) and r.mask.shape == r.image.shape[:2]
assert 0.0 <= r.score <= 1.0'''),
    md("## 1. One Grad-CAM per word"),
    code('''
word_maps = st["word_maps"].numpy()
n = len(word_maps)
fig, axes = plt.subplots(1, n + 1, figsize=(2.8 * (n + 1), 3))
axes[0].imshow(r.image)
axes[0].set_title("input")
for ax, word, m in zip(axes[1:], st["words"], word_maps, strict=False):
    ax.imshow(m, cmap="jet")
    ax.set_title(f"word: {word!r}")
for ax in axes:
    ax.axis("off")
fig.suptitle(f"per-word Grad-CAMs for {text!r} (token grid)")
plt.tight_layout()
plt.show()'''),
    md("## 2-3. Averaged map, then affinity refinement"),
    code('''
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
axes[0].imshow(st["gradcam"].numpy(), cmap="jet")
axes[0].set_title("averaged over words")
axes[1].imshow(st["affinity"].numpy(), cmap="jet")
axes[1].set_title("refined by ViT affinity")
axes[2].imshow(r.image)
axes[2].imshow(r.heatmap, cmap="jet", alpha=0.5)
axes[2].set_title("refined, at image size")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()'''),
    md("## 4. Proposals and the one selected\nThe proposals are computed on the image (no learning); "
       "the selected one has the highest IoU with the map thresholded at tau."),
    code('''
from wsris.blocks.proposals import generate_proposals
from wsris.methods.chunk.pipeline import proposal_image

small = proposal_image(r.image)
proposals = generate_proposals(small)
chosen = st["proposal"]
print(f"{len(proposals)} proposals; selected #{chosen['index']} with IoU {chosen['iou']:.2f} "
      f"against the map >= {chosen['tau']}")
assert len(proposals) >= 7 and -1 <= chosen["index"] < chosen["count"]
assert 0.0 <= chosen["iou"] <= 1.0 and chosen["tau"] == seg.config["inference"]["proposal_tau"]
show = list(range(7)) + [chosen["index"]]
fig, axes = plt.subplots(1, len(show), figsize=(2.4 * len(show), 2.8))
for ax, k in zip(axes, show, strict=True):
    tint = small.copy()
    tint[proposals[k]] = (0.5 * tint[proposals[k]] + [0, 127, 0]).astype(np.uint8)
    ax.imshow(tint)
    ax.set_title("selected" if k == chosen["index"] else f"proposal {k}", fontsize=9)
    ax.axis("off")
plt.tight_layout()
plt.show()'''),
    code('''
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(r.overlay(color=MASK_COLOUR))
ax.set_title(f"final mask: {text!r}")
ax.axis("off")
plt.show()'''),
    md("## The effect of each stage on a small evaluation\nThe same model, three pipelines "
       "(`wsris eval --variant gradcam|affinity|proposals`), on the first 24 Shapes-Ref val "
       "samples, beside the trivial baselines. A small sample: for real figures run `wsris eval` "
       "on the whole split."),
    code('''
from wsris.evaluation import evaluate, load_dataset, variant_options

data = load_dataset("shapes:val")
scores = {}
for variant in ("gradcam", "affinity", "proposals"):
    report = evaluate(data, seg, method_options=variant_options("chunk", variant), limit=24,
                      progress=False, baselines=(variant == "gradcam"))
    scores[variant] = 100 * report.metrics["model"]["mIoU"]
    if variant == "gradcam":
        base = {k: 100 * v["mIoU"] for k, v in report.metrics.items() if k != "model"}
print({k: round(v, 1) for k, v in scores.items()}, {k: round(v, 1) for k, v in base.items()})
assert set(scores) == {"gradcam", "affinity", "proposals"}
assert set(base) == {"random_object", "all_objects", "centre_box"}
assert all(0.0 <= v <= 100.0 for v in [*scores.values(), *base.values()])
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(list(scores), list(scores.values()), color="tab:blue", label="albef-chunk-shapes")
for (name, value), style in zip(base.items(), ("--", ":", "-."), strict=False):
    ax.axhline(value, color="gray", linestyle=style, label=f"baseline: {name}")
ax.set_ylabel("mIoU (%)")
ax.set_xlabel("pipeline stages")
ax.set_title("Each stage on 24 Shapes-Ref val samples")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()'''),
]

SAG = [
    md("""
# 03 · Shatter and Gather, opened up

Kim et al. 2023 on the bundled `sag-shapes` model: the entity slots the model discovers
(`A^slot`), how the text weighs them (`A^fuse`), the top-3 entities (the paper's
Figure 5), the final map `A^slot . A^fuse`, and the MAX / AVG / MIN variants of Table 4b.
"""),
    code(SETUP),
    code('''
seg = wsris.load("sag-shapes")
text = "the large red circle"
r = seg.segment(IMAGE, text)
a_slot, a_fuse = r.stages["a_slot"], r.stages["a_fuse"]
print(seg, "| entities:", a_slot.shape[0], "| token grid:", tuple(a_slot.shape[1:]),
      "| slot init:", r.stages["slot_init"], "| slot split:", r.stages["slot_split"])
assert a_fuse.shape[0] == a_slot.shape[0]
# The slots themselves: A^slot is a softmax over slots, so their maps sum to one per token
whole = seg.segment(IMAGE, text, slot_split="none").stages["a_slot"]
assert np.allclose(whole.sum(0).numpy(), 1.0, atol=1e-4)
# With slot_split="pieces" a slot that falls apart becomes one entity per piece, each
# keeping its slot's map inside the piece: together they never exceed one
assert (a_slot.sum(0) <= 1.0 + 1e-4).all()'''),
    md("## All discovered entities\nEach panel is one entity's `A^slot`: a slot (a softmax over slots), or, for a model with `slot_split: pieces`, one connected piece of a slot. The title gives its `A^fuse` weight for the text."),
    code('''
k = a_slot.shape[0]
cols = min(k, 6)
rows = (k + cols - 1) // cols
fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.5 * rows), squeeze=False)
for i, ax in enumerate(axes.flat):
    ax.axis("off")
    if i < k:
        ax.imshow(a_slot[i].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"entity {i}: A^fuse {float(a_fuse[i]):.2f}", fontsize=9)
fig.suptitle(f"entities for {text!r}")
plt.tight_layout()
plt.show()'''),
    md("## Top-3 entities by relevance (Figure 5)"),
    code('''
from wsris.blocks.slots import top_entities_figure

strip, entities = top_entities_figure(r.image, a_slot, a_fuse, k=3)
assert len(entities) == 3
assert [e.relevance for e in entities] == sorted((e.relevance for e in entities), reverse=True)
assert abs(entities[0].relevance - float(a_fuse.max())) < 1e-6
fig, ax = plt.subplots(figsize=(12, 3.4))
ax.imshow(strip)
ax.set_title("input | " + " | ".join(f"entity {e.index} ({e.relevance:.2f})" for e in entities))
ax.axis("off")
plt.show()'''),
    md("## The final mask, and MAX / AVG / MIN\n`product` is the paper's `A^slot . A^fuse`; MAX keeps only the most relevant slot, AVG weighs all slots equally, MIN keeps the least relevant."),
    code('''
combines = ("product", "max", "avg", "min")
fig, axes = plt.subplots(2, len(combines), figsize=(3.2 * len(combines), 6.4))
for j, name in enumerate(combines):
    rc = seg.segment(IMAGE, text, combine=name)
    assert rc.mask.shape == r.mask.shape and rc.heatmap.max() <= 1.0
    axes[0, j].imshow(rc.heatmap, cmap="jet", vmin=0, vmax=1)
    axes[0, j].set_title(f"{name}: map")
    axes[1, j].imshow(rc.overlay(color=MASK_COLOUR))
    axes[1, j].set_title(f"{name}: mask")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"{text!r}: how the slot maps are combined")
plt.tight_layout()
plt.show()'''),
]

EVALUATE = [
    md("""
# 04 · Evaluate on Shapes-Ref

`wsris eval` from Python: a model against the trivial baselines (random object, all
objects, centred box), the metrics table, the distribution of per-sample IoU and the
worst cases. Shapes-Ref is generated on the fly, so this runs anywhere; for RefCOCO pass
`data="refcoco+:unc:val@/path/to/refer"` (see docs/data.md).
"""),
    code(SETUP),
    code('''
from wsris.evaluation import run

report = run(data="shapes:val", model="sag-shapes", limit=60, progress=False)
assert report.meta["samples"] == 60 and len(report.samples) == 60 and not report.skipped
assert set(report.metrics) == {"model", "random_object", "all_objects", "centre_box"}'''),
    md("## Per-sample IoU"),
    code('''
ious = np.array([s["model"]["iou"] for s in report.samples])
base = np.array([s["random_object"]["iou"] for s in report.samples])
assert abs(ious.mean() - report.metrics["model"]["mIoU"]) < 1e-9  # the histogram is the table's
fig, ax = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(0, 1, 21)
ax.hist(ious, bins=bins, alpha=0.7, label=f"sag-shapes (mIoU {100 * ious.mean():.1f})")
ax.hist(base, bins=bins, alpha=0.5, label=f"random object (mIoU {100 * base.mean():.1f})")
ax.set_xlabel("IoU with the ground-truth mask")
ax.set_ylabel("samples")
ax.set_title(f"Per-sample IoU on {len(ious)} Shapes-Ref val samples")
ax.legend()
plt.tight_layout()
plt.show()'''),
    md("## The worst cases\nThe four lowest-IoU samples: the target outlined in green, the prediction tinted magenta."),
    code('''
import cv2

from wsris.evaluation import load_dataset

data = load_dataset("shapes:val")
seg = wsris.load("sag-shapes")
worst = sorted(report.samples, key=lambda s: s["model"]["iou"])[:4]
assert worst[0]["model"]["iou"] == ious.min()
fig, axes = plt.subplots(1, len(worst), figsize=(3.4 * len(worst), 3.8))
for ax, rec in zip(axes, worst, strict=True):
    sample = data[rec["index"]]
    r = seg.segment(sample.image, sample.text)
    assert sample.text == rec["text"] and r.mask.shape == sample.mask.shape
    shown = np.asarray(r.overlay(color=MASK_COLOUR)).copy()
    contours, _ = cv2.findContours(sample.mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(shown, contours, -1, (0, 220, 0), 2)
    ax.imshow(shown)
    ax.set_title(f"{sample.text}\\nIoU {rec['model']['iou']:.2f} ({rec['kind']})", fontsize=8)
    ax.axis("off")
plt.tight_layout()
plt.show()'''),
]

ALBEF = [
    md("""
# 05 · Converting ALBEF's official checkpoint

The chunk method starts from ALBEF's public grounding checkpoint `refcoco.pth`. wsris
cannot download it (no network at run time), so you fetch it once yourself and convert it:

```
wsris convert albef refcoco.pth checkpoints/albef-refcoco
wsris segment photo.jpg "man in blue shirt" -m checkpoints/albef-refcoco
```

The cells below look for the real file at `$WSRIS_ALBEF_CHECKPOINT` (default
`refcoco.pth` in the repository root) and skip with a message when it is absent; the rest
of the notebook runs the **same converter** on a tiny synthetic checkpoint with ALBEF's
parameter names and layout.
"""),
    code(SETUP.replace("import numpy as np\n", "")),  # this notebook needs no NumPy
    code('''
import os

real = Path(os.environ.get("WSRIS_ALBEF_CHECKPOINT", ROOT / "refcoco.pth"))
HAVE_REAL = real.is_file()
print(f"real checkpoint at {real}: {'found' if HAVE_REAL else 'absent, its cells will skip'}")'''),
    md("## The real checkpoint (skips when absent)"),
    code('''
import tempfile

from wsris.methods.chunk.convert import convert_albef

work = Path(tempfile.mkdtemp())
if HAVE_REAL:
    folder = convert_albef(real, work / "albef-refcoco")
    real_seg = wsris.load(folder)
    r = real_seg.segment(IMAGE, "the large red circle")
    plt.imshow(r.overlay(color=MASK_COLOUR))
    plt.title("ALBEF refcoco.pth + chunk pipeline")
    plt.axis("off")
    plt.show()
else:
    print("SKIPPED: no refcoco.pth. Download ALBEF's grounding checkpoint and set "
          "WSRIS_ALBEF_CHECKPOINT to run this cell.")'''),
    md("## A tiny synthetic checkpoint through the same converter\nThe layout (ALBEF's key names, shapes, the `position_ids` buffer) comes from the test suite's description of `refcoco.pth`, written from ALBEF's documentation, not from wsris' model code."),
    code('''
import sys

import torch

sys.path.insert(0, str(ROOT))
from tests.albef_layout import TINY, grounding_layout, materialise  # noqa: E402
from wsris.models.albef import AlbefConfig  # noqa: E402

fake = work / "tiny_refcoco.pth"
torch.save(materialise(grounding_layout(TINY), seed=0), fake)
tiny = AlbefConfig.tiny()
folder = convert_albef(fake, work / "albef-tiny", config=tiny)
print(sorted(p.name for p in folder.iterdir()))
assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]'''),
    code('''
seg = wsris.load(folder)
r = seg.segment(IMAGE, "the large red circle")
assert seg.method == "chunk" and r.mask.shape == r.image.shape[:2]
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
axes[0].imshow(r.image)
axes[0].imshow(r.heatmap, cmap="jet", alpha=0.5)
axes[0].set_title("heat map (random weights)")
axes[1].imshow(r.overlay(color=MASK_COLOUR))
axes[1].set_title("mask")
for ax in axes:
    ax.axis("off")
fig.suptitle("converted synthetic checkpoint: the pipeline runs, the weights are noise")
plt.tight_layout()
plt.show()'''),
    md("## What a wrong file does\nA checkpoint with a missing or mis-shaped tensor is refused with a typed error naming the keys; nothing is written."),
    code('''
from wsris.errors import WeightsMismatchError

broken = materialise(grounding_layout(TINY), seed=0)
broken.pop("itm_head.weight")
torch.save(broken, work / "broken.pth")
try:
    convert_albef(work / "broken.pth", work / "albef-broken", config=tiny)
except WeightsMismatchError as exc:
    refusal = str(exc)
else:
    raise AssertionError("the converter accepted a checkpoint with a missing tensor")
print("refused:", refusal[:300])
assert "itm_head.weight" in refusal
assert not (work / "albef-broken" / "model.safetensors").exists()  # nothing written
print("written:", (work / "albef-broken" / "model.safetensors").exists())'''),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_chunk_method.ipynb": CHUNK,
    "03_sag_method.ipynb": SAG,
    "04_evaluate.ipynb": EVALUATE,
    "05_official_albef.ipynb": ALBEF,
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells)
        for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives no spurious diff
            cell.id = f"{Path(name).stem}-{i:02d}"
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, OUT / name)
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
