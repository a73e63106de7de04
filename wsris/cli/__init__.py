"""The ``wsris`` command line.

Exit codes: 0 success; 1 unexpected wsris error; 2 bad command-line usage (click);
3 unusable image or text; 4 malformed manifest or config; 5 unknown or unpublished
model, or a folder that is not a model folder; 6 weights not available (offline, not
cached, unreachable); 7 checksum or weight mismatch; 8 device or dtype not available;
9 dataset files missing or malformed; 10 no spaCy English pipeline installed; 11 an
output path that cannot or must not be written; 130 interrupted (Ctrl-C); 143
terminated (SIGTERM). Both signals clean up the run's partial outputs first.

wsris's own warnings (:class:`~wsris.errors.WsrisWarning`) are printed as one line,
``wsris: warning: ...``, on stderr.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings

import click

# Importing the package set the thread policy (OMP_WAIT_POLICY) before torch: see
# wsris/__init__.py, the one place for the CLI and the Python API alike.
from .._version import __version__
from ..errors import (
    INTERRUPTED_EXIT_CODE,
    TERMINATED_EXIT_CODE,
    Terminated,
    WsrisError,
    WsrisWarning,
)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: wsris warnings as one plain line."""
    if issubclass(category, WsrisWarning):
        click.echo(f"wsris: warning: {_one_line(str(message))}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def _terminate(signum, frame) -> None:
    raise Terminated()


class _Group(click.Group):
    """Prints wsris errors as one line on stderr and exits with their code; Ctrl-C exits
    130 and SIGTERM 143 (commands clean up their partial outputs on the way)."""

    def invoke(self, ctx: click.Context):
        previous = warnings.showwarning
        warnings.showwarning = show_warning
        previous_term = None
        if threading.current_thread() is threading.main_thread():
            previous_term = signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except WsrisError as exc:
            click.echo(f"wsris: error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except Terminated:
            click.echo("wsris: terminated", err=True)
            sys.exit(TERMINATED_EXIT_CODE)
        except KeyboardInterrupt:
            click.echo("wsris: interrupted", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        finally:
            warnings.showwarning = previous
            if previous_term is not None:
                signal.signal(signal.SIGTERM, previous_term)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsris")
def main() -> None:
    """Weakly supervised referring image segmentation.

    \b
    Segment what a phrase refers to:   wsris segment IMAGE "the large red circle"
    List the models:                   wsris models
    Try them in a web page:            wsris demo
    """


def _register() -> None:
    from .convert import convert_group
    from .data import data_group
    from .demo import demo_command
    from .eval import eval_command
    from .export import export_command
    from .models import download_command, models_command
    from .segment import segment_command
    from .train import train_command

    main.add_command(segment_command)
    main.add_command(eval_command)
    main.add_command(train_command)
    main.add_command(convert_group)
    main.add_command(data_group)
    main.add_command(export_command)
    main.add_command(models_command)
    main.add_command(download_command)
    main.add_command(demo_command)


_register()
