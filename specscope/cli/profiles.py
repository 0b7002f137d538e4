"""`specscope profiles`: the profiles and the drafting methods, one screen."""
from __future__ import annotations

from specscope.cli.options import friendly_errors


@friendly_errors
def profiles() -> None:
    """List the profiles: name, target, drafter and a one-line description."""
    from rich.console import Console

    from specscope.profiles import DEFAULT_PROFILE, list_profiles, quant_label
    from specscope.session import METHODS, mtp_head

    console = Console(highlight=False, soft_wrap=True)  # a pipe or a log: whole lines, not cut at 80
    for p in list_profiles():
        default = " (default)" if p.name == DEFAULT_PROFILE else ""
        console.print(f"[bold]{p.name}[/bold]{default}  {p.description}")
        console.print(f"    target {p.target}  drafter {p.drafter or '-'}  {p.dtype} on {p.device}"
                      f"  draft_len {p.draft_len}" + (f"  ({quant_label(p)})" if quant_label(p) else ""),
                      style="dim")
        head = mtp_head(p)
        console.print(f"    FastMTP head: {head}" if head else
                      f"    FastMTP head: none (train one: specscope mtp train --profile {p.name})",
                      style="dim")
    console.print("\n[bold]methods[/bold]")
    for name, text in METHODS.items():
        console.print(f"  {name:10} {text}")
