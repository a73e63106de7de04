"""``python -m wsris.evaluation`` (for torchrun): the ``wsris eval`` command.

An entry point like ``wsris.cli``: the library itself never imports the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..cli.eval import eval_command
from ..errors import INTERRUPTED_EXIT_CODE, WsrisError


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wsris.evaluation`` (for torchrun): the ``wsris eval`` command."""
    import click

    try:
        eval_command.main(args=list(argv) if argv is not None else None,
                          prog_name="python -m wsris.evaluation", standalone_mode=False)
    except WsrisError as exc:
        click.echo(f"wsris: error: {exc}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("wsris: interrupted", err=True)
            return INTERRUPTED_EXIT_CODE
        click.echo("Aborted!", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
