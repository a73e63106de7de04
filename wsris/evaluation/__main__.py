"""``python -m wsris.evaluation`` (for torchrun): the ``wsris eval`` command.

An entry point like ``wsris.cli``: the library itself never imports the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..cli.eval import eval_command
from ..errors import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE, Terminated, WsrisError


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wsris.evaluation`` (for torchrun): the ``wsris eval`` command."""
    import signal
    import threading

    import click

    from ..cli import _terminate

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)  # cleaned up like Ctrl-C
    try:
        eval_command.main(args=list(argv) if argv is not None else None,
                          prog_name="python -m wsris.evaluation", standalone_mode=False)
    except WsrisError as exc:
        click.echo(f"wsris: error: {exc}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__
        if isinstance(cause, Terminated):
            click.echo("wsris: terminated", err=True)
            return TERMINATED_EXIT_CODE
        if isinstance(cause, KeyboardInterrupt):
            click.echo("wsris: interrupted", err=True)
            return INTERRUPTED_EXIT_CODE
        click.echo("Aborted!", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
