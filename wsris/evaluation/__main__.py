"""``python -m wsris.evaluation`` (for torchrun): the ``wsris eval`` command.

An entry point like ``wsris.cli``, and run by it, so that errors, Ctrl-C and SIGTERM end
with the same messages and exit codes; the library itself never imports the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wsris eval`` with ``argv`` (default: the process's arguments); its exit code."""
    from ..cli import main as cli

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=["eval", *args], prog_name="python -m wsris.evaluation")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
