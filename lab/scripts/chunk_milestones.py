"""The chunk model's learning milestones on the first N Shapes-Ref val expressions:
ITM pair ranking (own image vs another scene's expression) and the share of expressions
whose Grad-CAM ([CLS] and words averaged, the model's Grad-CAM layer) ranks the target
first among the scene's objects, per expression kind.

The pair ranking is also given over the pairs whose other expression is certainly false of
the image (``itm_pair_certain_negatives``): on Shapes-Ref a random other scene's
expression often describes an object of this scene as well (see
wsris/training/false_negatives.py), and such a pair has no right order.

``itm_pair_true_negatives`` ranks every expression against a true negative: the first
expression from the next scenes on that is false of every object of the image by those
exact semantics (so hard negatives whose head fits but whose relation, location or
negation does not are kept). This is the balanced ITM pair ranking of the chunk issue's
milestone on pairs that have a right order.

The other pairs ("may describe": some object fits the other text's head attributes) are
split by the grammar's exact semantics (wsris/data/shapes_semantics.py) of the other text on
this image: (a) ``refers``, true of exactly one object (a proper referring expression here,
no right order), (b) ``several``, true of more than one object (no right order), (c)
``false``, false of every object (has a right order), (d) ``undetermined``, left open by the
grammar's dead zones (a borderline relation or location) or a landmark phrase that fits
several objects. ``itm_pair_ceiling`` is the best balanced figure when (a), (b) and (d) are
coin flips and every other pair is ranked right; ``itm_pair_ceiling_d_rankable`` counts (d)
as rankable; ``itm_pair_rankable`` is the model's accuracy over the pairs with a right order
(certain negatives and (c)). ``own_text_denotation`` is the share of val expressions whose
semantics on their own scene is exactly their target (the parser's check; expected 1.0).

    python lab/scripts/chunk_milestones.py MODEL [--limit 2000] [--variant plus]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # wsris's thread policy; torch comes first

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import wsris  # noqa: E402
from wsris.data.shapes import ShapesRef
from wsris.data.shapes_semantics import Reading, evaluate
from wsris.methods.chunk.gradcam import compute_gradcam, sentence_map
from wsris.methods.chunk.validation import _picked
from wsris.training.false_negatives import may_describe

#: The classes of the "may describe" pairs, in report order.
CLASSES = ("refers", "several", "false", "undetermined")


def pair_class(reading: Reading) -> str:
    """The class of a "may describe" pair from the other text's reading on this image."""
    if reading.refers:
        return "refers"
    if len(reading.true) >= 2:
        return "several"
    if not reading.true and not reading.unclear:
        return "false"
    return "undetermined"


#: Classes of a negative that is false of every object of the image (it has a right order).
FALSE_OF_IMAGE = ("certain", "false")


def negative_class(text: str, objects, config) -> str:
    """``certain`` when ``text``'s head fits no object of the image, else its
    :func:`pair_class` under the exact Shapes-Ref semantics."""
    if not may_describe(text, objects):
        return "certain"
    return pair_class(evaluate(text, objects, config))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--variant", default="default", help="Shapes-Ref variant, e.g. plus")
    args = ap.parse_args()
    seg = wsris.load(args.model, device="cpu")
    model = seg.model.eval()
    data = ShapesRef("val", variant=args.variant).referring()
    layer = seg.config["inference"].get("gradcam_layer", model.config.default_gradcam_layer)
    picks: dict[str, list[float]] = {}
    pairs, certain = [], []
    classes: dict[str, list[float]] = {c: [] for c in CLASSES}
    own_ok: list[float] = []
    true_neg: list[float] = []
    n = min(args.limit, len(data))
    for i in range(n):
        s = data[i]
        first = (i + 7 * data.per_scene) % len(data)  # another scene's expression
        other = data[first]
        pixels = seg.preprocess(s.image)
        both = seg.tokenizer([s.text, other.text])
        with torch.no_grad():
            image = model.encode_image(pixels).tokens
            text = model.encode_text(both.input_ids, both.attention_mask)
            fused = model.fuse(text, both.attention_mask, image.expand(2, -1, -1))
            match = model.itm_logits(fused.hidden).softmax(-1)[:, 1]
        pairs.append(float(match[0] > match[1]))
        objects = data.scene(i // data.per_scene).objects
        kind = negative_class(other.text, objects, data.config)
        (certain if kind == "certain" else classes[kind]).append(pairs[-1])
        # the same ranking against a true negative: the first expression from the next
        # scenes on that is false of every object of this image
        if kind in FALSE_OF_IMAGE:
            true_neg.append(pairs[-1])
        else:
            j = (first + data.per_scene + 1) % len(data)
            while negative_class(data[j].text, objects, data.config) not in FALSE_OF_IMAGE:
                j = (j + data.per_scene + 1) % len(data)
            neg = seg.tokenizer([data[j].text])
            with torch.no_grad():
                t = model.encode_text(neg.input_ids, neg.attention_mask)
                f = model.fuse(t, neg.attention_mask, image)
                true_neg.append(float(match[0] > model.itm_logits(f.hidden).softmax(-1)[0, 1]))
        one = seg.tokenizer([s.text])
        with torch.enable_grad():
            cam = compute_gradcam(model, image, one.input_ids, one.attention_mask, layer)
        smap = sentence_map(cam.maps, one.attention_mask.bool())[0]
        target = next(k for k, m in enumerate(s.object_masks) if (m == s.mask).all())
        own = evaluate(s.text, objects, data.config)
        own_ok.append(float(own.refers and own.true == (target,)))
        ok = float(_picked(smap, s.object_masks) == target)
        picks.setdefault(str(s.kind), []).append(ok)
        picks.setdefault("all", []).append(ok)
    out = {"model": args.model, "variant": args.variant, "samples": n,
           "itm_pair_balanced": float(np.mean(pairs)),
           "itm_pair_certain_negatives": float(np.mean(certain)), "n_certain": len(certain)}
    coin = sum(len(classes[c]) for c in ("refers", "several", "undetermined"))
    rankable = certain + classes["false"]
    out.update({
        "n_may_describe": n - len(certain),
        "itm_pair_rankable": float(np.mean(rankable)) if rankable else None,
        "n_rankable": len(rankable),
        "itm_pair_ceiling": (len(rankable) + coin / 2) / n,
        "itm_pair_ceiling_d_rankable": (len(rankable) + coin / 2) / n
        + len(classes["undetermined"]) / 2 / n,
        "own_text_denotation": float(np.mean(own_ok)),
        "itm_pair_true_negatives": float(np.mean(true_neg)),
    })
    for c, v in classes.items():
        out[f"n_may_{c}"] = len(v)
        out[f"itm_pair_may_{c}"] = float(np.mean(v)) if v else None
    out.update({f"pick_{k}": float(np.mean(v)) for k, v in picks.items()})
    out.update({f"n_{k}": len(v) for k, v in picks.items()})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
