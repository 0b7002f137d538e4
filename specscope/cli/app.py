"""The `specscope` Typer app: every command, registered in the order `--help` lists them.

Each command lives in its own module beside this one (generate.py, chat.py, ...) and imports its
options from options.py; nothing outside specscope/cli/ imports this package.
"""
from __future__ import annotations

import sys

import typer

from specscope.cli.bench import bench
from specscope.cli.chat import chat
from specscope.cli.doctor import doctor
from specscope.cli.generate import generate
from specscope.cli.hrad import hrad_app
from specscope.cli.layerskip import layerskip_search
from specscope.cli.lesson import lesson
from specscope.cli.mtp import mtp_app
from specscope.cli.profiles import profiles
from specscope.cli.trim import trim
from specscope.core.errors import SpecScopeError

app = typer.Typer(
    help="specscope: watch, tune and measure speculative decoding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)

app.command()(generate)
app.command()(chat)
app.command()(profiles)
app.command()(trim)
app.command("layerskip-search")(layerskip_search)
app.command()(bench)
app.command()(doctor)
app.command()(lesson)
app.add_typer(mtp_app, name="mtp")
app.add_typer(hrad_app, name="hrad")


def main() -> None:
    try:
        app()
    except SpecScopeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
