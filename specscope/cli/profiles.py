"""`specscope profiles`: the profiles and the drafting methods, one screen."""
from __future__ import annotations

from specscope.cli.options import friendly_errors


@friendly_errors
def profiles() -> None:
    """List the profiles: name, target, drafter and a one-line description."""
    from rich.console import Console

    from specscope.profiles import DEFAULT_PROFILE, list_profiles, quant_label
    from specscope.session import METHODS, head_facts
    from specscope.train.budget import train_command

    console = Console(highlight=False, soft_wrap=True)  # a pipe or a log: whole lines, not cut at 80
    for p in list_profiles():
        default = " (default)" if p.name == DEFAULT_PROFILE else ""
        console.print(f"[bold]{p.name}[/bold]{default}  {p.description}")
        console.print(f"    target {p.target}  drafter {p.drafter or '-'}  {p.dtype} on {p.device}"
                      f"  draft_len {p.draft_len}" + (f"  ({quant_label(p)})" if quant_label(p) else ""),
                      style="dim")
        head = head_facts(p)
        if head is None:
            console.print(f"    FastMTP head: none ({train_command(p)})", style="dim")
        else:
            acc = " ".join(f"{a:.2f}" for a in head["acceptance"]) or "-"
            runs = f" in {head['runs']} runs" if head["runs"] > 1 else ""
            ev = head["eval"]
            own = f", its own estimate on {head['estimate_prompts'] or '?'} prompts" if ev else ""
            measured = (f"mtp eval {' '.join(f'{a:.2f}' for a in ev['acceptance'])} on "
                        f"{ev['prompts']} report prompts ({ev['date']}); " if ev else "")
            console.print(f"    FastMTP head: {measured}held-out acceptance {acc} (draft steps "
                          f"1..{len(head['acceptance'])}{own}), "
                          f"trained {head['seconds'] / 60:.0f} min{runs}, {head['written']}  {head['path']}",
                          style="dim")
    console.print("\n[bold]methods[/bold]")
    for name, text in METHODS.items():
        console.print(f"  {name:10} {text}")
