"""How far apart a SaG model's text features put expressions that mean different things.

    python lab/scripts/sag_text_similarity.py [MODEL]

Prints the cosine between pairs of Shapes-Ref expressions that differ in one word (colour,
shape, size, left/right, the order of a relation, negation) for the text encoder's
[CLS] state, its mean-pooled token states, and the model's text feature (the fusion's
query and the C^3 target). A pair at cosine ~1 cannot be told apart by the fusion, and
C^3 cannot teach the difference, since its target is that same feature.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import wsris

PAIRS = [
    ("the red circle", "the blue circle"),
    ("the red circle", "the red square"),
    ("the small red circle", "the large red circle"),
    ("the red shape on the left", "the red shape on the right"),
    ("the circle left of the square", "the square left of the circle"),
    ("the red circle", "the circle that is not red"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="sag-shapes")
    args = ap.parse_args()
    seg = wsris.load(args.model, device="cpu")
    model = seg.model.eval()
    texts = [t for pair in PAIRS for t in pair]
    batch = seg.tokenizer(texts)
    with torch.no_grad():
        hidden = model.text_encoder(batch.input_ids, batch.attention_mask)
        mask = batch.attention_mask[..., None].float()
        views = {
            "[CLS]": hidden[:, 0],
            "mean-pooled": (hidden * mask).sum(1) / mask.sum(1),
            "model feature": model.encode_text(batch.input_ids, batch.attention_mask),
        }
    print(f"{'pair':62s} " + " ".join(f"{v:>13s}" for v in views))
    for i, (a, b) in enumerate(PAIRS):
        cos = [float(F.cosine_similarity(x[2 * i].float(), x[2 * i + 1].float(), dim=0))
               for x in views.values()]
        print(f"{a + ' / ' + b:62s} " + " ".join(f"{c:13.3f}" for c in cos))


if __name__ == "__main__":
    main()
