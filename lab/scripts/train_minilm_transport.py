"""``wsris train`` on a machine without the all-MiniLM-L6-v2 package (the GPU image),
reading MiniLM from a float32 transport file instead (``lab/scripts/gpu_carry.py --sag``).

    python lab/scripts/train_minilm_transport.py TRANSPORT -- RECIPE --output-dir RUN [...]

The transport file holds the package's weights exactly for every token Shapes-Ref text
can produce (the other embedding rows are zero), so a frozen MiniLM computes the same
text features from it; the models this trains name the package (and its sha256) as their
text weights, and load from it everywhere else. For Shapes-Ref recipes only.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "lab" / "scripts")]


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    from gpu_carry import use_minilm_transport

    import wsris.training.warm_start
    import wsris.weights.pretrained
    from wsris.cli import main as cli

    state = use_minilm_transport(Path(argv[0]))  # models that load MiniLM as external weights
    # init.text_encoder: minilm
    for module in (wsris.weights.pretrained, wsris.training.warm_start):
        module.minilm_state_dict = lambda: dict(state)
    cli(["train", *argv[2:]])  # exits with the command's status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
