"""``python -m wsris.cli`` (e.g. under torchrun)."""

from . import main

main()
