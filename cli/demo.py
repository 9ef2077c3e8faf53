"""`marketlake demo`: the whole chain offline on the data the project ships."""

from __future__ import annotations

import click

from cli.main import _ctx, cli, handle_errors


@cli.command("demo")
@click.pass_context
@handle_errors
def demo_cmd(ctx: click.Context) -> None:
    """Run the whole chain offline on the real data the project ships.

    \b
    Example:
      marketlake demo
    """
    _ctx(ctx)
    from lake.errors import NotBuiltYet

    raise NotBuiltYet("demo: not built yet")
