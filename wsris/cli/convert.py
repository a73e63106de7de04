"""``wsris convert NAME ...``: turn published checkpoints into wsris model folders.

One subcommand per converter a method registers (see :mod:`wsris.registry`)."""

from __future__ import annotations

import click

from ..registry import converter_names, find_converter, load_object
from ..weights.model_ref import usage_lines  # noqa: F401  (was defined here)


@click.group("convert")
def convert_group() -> None:
    """Convert a published checkpoint into a folder that ``wsris.load`` reads."""


def _attach_converters() -> None:
    for name in converter_names():
        command = find_converter(name)[1].command
        if command is not None:
            convert_group.add_command(load_object(command), name)


_attach_converters()
