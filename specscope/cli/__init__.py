"""The `specscope` command: thin typer commands that parse, validate and call the library.

app.py builds the app from one module per command; options.py holds what they share. The entry
point is `specscope.cli:main`.
"""
from specscope.cli.app import app, main

__all__ = ["app", "main"]
