"""``wsris demo``: the local web page (see :mod:`wsris.demo`)."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--model", "-m", "models", multiple=True,
              help="Offer only these models (repeatable; default: every bundled or cached "
                   "model with trained weights, the default model first).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--open/--no-open", "open_browser", default=False, show_default=True,
              help="Open the page in the default web browser.")
def demo_command(port: int, models: tuple[str, ...], device: str, open_browser: bool) -> None:
    """Serve a web page on this machine to try the models: pick an example or upload an
    image, type phrases, see each phrase's overlay and heat map, download the masks.

    The page is served on 127.0.0.1 only and loads nothing from the internet. An image is
    encoded once per model, so more phrases on it cost no further encoding. Ctrl-C stops.
    """
    from ..demo import DemoApp
    from ..demo.server import HOST, start_server
    from ..weights.model_ref import peek_config

    for name in models:
        peek_config(name)  # an unknown or unpublished name fails now, not on the page
    app = DemoApp(list(models) or None, device=device)
    try:
        server, thread = start_server(app, HOST, port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {HOST}:{port}: {exc.strerror or exc} "
                                   "(another program may hold the port: pass --port N, "
                                   "or --port 0 for any free one)") from exc
    url = f"http://{HOST}:{server.server_address[1]}/"
    click.echo(f"wsris demo: {url} (models: {', '.join(app.models)}; Ctrl-C stops)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        thread.join()
    finally:
        server.shutdown()
        server.server_close()
