"""Write the bundled example image examples/shapes_scene.png and its expressions.

    python scripts/make_example.py

A Shapes-Ref test scene rendered at 256 px (the models resize it to their input size);
examples/shapes_scene.json lists its referring expressions and their target objects.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from wsris.data.shapes import ShapesRef

ROOT = Path(__file__).resolve().parents[1]
SCENE = 3


def main() -> None:
    scene = ShapesRef("test", image_size=256, expressions_per_scene=4)[SCENE]
    out = ROOT / "examples"
    out.mkdir(exist_ok=True)
    Image.fromarray(scene.image).save(out / "shapes_scene.png")
    info = {
        "source": f"Shapes-Ref test scene {SCENE}, image_size 256, seed 0",
        "objects": [f"{o.size} {o.colour} {o.shape}" for o in scene.objects],
        "expressions": [
            {"text": e.text, "kind": e.kind, "target": e.target} for e in scene.expressions
        ],
    }
    (out / "shapes_scene.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
