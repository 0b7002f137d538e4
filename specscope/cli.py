"""The `specscope` command: thin typer commands that parse, call the core and render.

Every known problem (SpecScopeError) becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.core.errors import SpecScopeError

app = typer.Typer(
    help="specscope: watch, tune and measure speculative decoding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)

# Options shared by generate, chat and bench.
Profile = Annotated[Optional[str], typer.Option("--profile", "-p", metavar="NAME|FILE", help="Profile name or YAML path (default: qwen2.5-coder).")]
Method = Annotated[Optional[str], typer.Option("--method", "-m", metavar="METHOD", help="Drafting method: ar, draft, lookup, ... (see `specscope profiles`).")]
DraftLen = Annotated[Optional[str], typer.Option("--draft-len", "-k", metavar="K|auto", help="Draft tokens per step (0-32), or auto (cost-aware), or auto:heuristic (+2/-1).")]
MaxNew = Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", metavar="N", help="Stop after this many new tokens.")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", "-t", metavar="T", help="0 for greedy; > 0 samples.")]
TopP = Annotated[Optional[float], typer.Option("--top-p", metavar="P", help="Nucleus sampling mass (0, 1].")]
TopK = Annotated[Optional[int], typer.Option("--top-k", metavar="K", help="Sample among the k most likely tokens (0: off).")]
Seed = Annotated[int, typer.Option("--seed", metavar="N", help="Random seed for sampling.")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", metavar="DTYPE", help="float32, bfloat16 or float16 (default: the profile's).")]
Device = Annotated[Optional[str], typer.Option("--device", metavar="DEVICE", help="cpu, cuda or cuda:N (default: the profile's).")]
Trimmed = Annotated[Optional[Path], typer.Option("--trimmed", metavar="FILE", help="A VocabTrim artifact from `specscope trim`.")]
VocabTopK = Annotated[Optional[int], typer.Option("--vocab-top-k", metavar="K", help="Drafter vocabulary size (needs --trimmed).")]
RefineSteps = Annotated[Optional[str], typer.Option("--refine-steps", metavar="T|auto", help="jacobi: parallel refinement passes per block (1-16), or auto (default; from measured costs and acceptance).")]
DraftQuant = Annotated[Optional[str], typer.Option("--draft-quant", metavar="none|int8|int4", help="Weight-only quantization of the drafter: none, int8 or int4 (output unchanged; default: the profile's).")]
DraftWindow = Annotated[Optional[int], typer.Option("--draft-window", metavar="W", help="Bound the draft model's KV cache to 4 sink tokens + the last W tokens (0: unbounded; default: the profile's, 1024).")]
Quant = Annotated[Optional[str], typer.Option("--quant", metavar="none|int8", help="Weight-only quantization of the target: none or int8 (output is then the int8 target's own; default: the profile's).")]


def parse_draft_len(value: str | None) -> tuple[int | None, bool | None, str | None]:
    """'5' -> (5, False, None); 'auto' -> (None, True, 'cost'); 'auto:heuristic' -> (None, True, 'heuristic')."""
    if value is None:
        return None, None, None
    value = value.strip().lower()
    if value in ("auto", "auto:cost"):
        return None, True, "cost"
    if value == "auto:heuristic":
        return None, True, "heuristic"
    try:
        return int(value), False, None
    except ValueError:
        raise SpecScopeError(f"--draft-len must be a number, auto or auto:heuristic, got '{value}'") from None


def parse_refine_steps(value: str | None) -> int | None:
    """'3' -> 3; 'auto' or None -> None (the drafter picks each block's passes)."""
    if value is None or value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise SpecScopeError(f"--refine-steps must be a number or auto, got '{value}'") from None


def friendly_errors(command):
    """Known problems become one line on stderr and exit code 2; Ctrl-C exits 130 quietly."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SpecScopeError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    """The prompt from the argument, or from --prompt-file (a path, or - for stdin)."""
    if prompt is None and prompt_file is None:
        raise SpecScopeError("no prompt: give PROMPT, or --prompt-file FILE (- for stdin)")
    if prompt is not None and prompt_file is not None:
        raise SpecScopeError("give the prompt as PROMPT or with --prompt-file, not both")
    if prompt == "-" or prompt_file == "-":
        return sys.stdin.read()
    if prompt is not None:
        return prompt
    path = Path(prompt_file).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecScopeError(f"prompt file not found: {path}") from None
    except IsADirectoryError:
        raise SpecScopeError(f"--prompt-file {path} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecScopeError(f"cannot read prompt file {path}: "
                             f"{getattr(e, 'strerror', None) or e}") from None


@app.command()
@friendly_errors
def generate(
    prompt: Annotated[Optional[str], typer.Argument(metavar="PROMPT", help="The prompt (use - to read it from stdin), or --prompt-file.", show_default=False)] = None,
    prompt_file: Annotated[Optional[str], typer.Option("--prompt-file", "-f", metavar="FILE", help="Read the prompt from this file (- for stdin) instead, e.g. a long document.")] = None,
    profile: Profile = None,
    method: Method = None,
    draft_len: DraftLen = None,
    max_new_tokens: MaxNew = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    seed: Seed = 0,
    dtype: Dtype = None,
    device: Device = None,
    trimmed: Trimmed = None,
    vocab_top_k: VocabTopK = None,
    refine_steps: RefineSteps = None,
    draft_quant: DraftQuant = None,
    quant: Quant = None,
    draft_window: DraftWindow = None,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", metavar="TEXT", help="Stop after this string (repeatable).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per event a line; the last is the summary.")] = False,
    hide_rejected: Annotated[bool, typer.Option("--hide-rejected", help="Do not show rejected draft tokens.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Send the prompt as is, without the chat template.")] = False,
) -> None:
    """Stream an answer, colouring accepted drafts, rejected drafts and the target's own tokens."""
    from specscope.frontends.generate import run_generate

    prompt = read_prompt(prompt, prompt_file)
    draft_len, adaptive, rule = parse_draft_len(draft_len)
    run_generate(prompt=prompt, profile=profile, method=method, draft_len=draft_len,
                 adaptive=adaptive, adaptive_rule=rule,
                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                 seed=seed, dtype=dtype, device=device, trimmed=trimmed, vocab_top_k=vocab_top_k,
                 stop=stop or [], json_out=json_out, hide_rejected=hide_rejected, raw=raw,
                 refine_steps=parse_refine_steps(refine_steps), draft_quant=draft_quant, quant=quant,
                 draft_window=draft_window)


@app.command()
@friendly_errors
def chat(
    profile: Profile = None,
    method: Method = None,
    draft_len: DraftLen = None,
    max_new_tokens: MaxNew = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    seed: Seed = 0,
    dtype: Dtype = None,
    device: Device = None,
    trimmed: Trimmed = None,
    vocab_top_k: VocabTopK = None,
    refine_steps: RefineSteps = None,
    draft_quant: DraftQuant = None,
    quant: Quant = None,
    draft_window: DraftWindow = None,
) -> None:
    """The interactive explorer (Textual TUI). Needs a terminal."""
    from specscope.tui.app import make_app

    draft_len, adaptive, rule = parse_draft_len(draft_len)
    explorer = make_app(profile, method=method, draft_len=draft_len, max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, seed=seed, dtype=dtype, device=device,
                        trimmed=trimmed, vocab_top_k=vocab_top_k, adaptive=adaptive,
                        adaptive_rule=rule,
                        refine_steps=parse_refine_steps(refine_steps),
                        draft_quant=draft_quant, quant=quant,
                        draft_window=draft_window)  # checks every option, loads nothing
    require_terminal("chat")
    explorer.run()


def require_terminal(command: str) -> None:
    """A full-screen app without a terminal (piped, redirected, under a job runner) cannot read
    keys or draw; Textual would then spin at 100% CPU forever. Refuse instead."""
    missing = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout))
               if not (hasattr(stream, "isatty") and stream.isatty())]
    if missing:
        raise SpecScopeError(f"`specscope {command}` needs a terminal, and {' and '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} not one; for scripts and pipes "
                             "use `specscope generate` (--json for one event a line)")


@app.command()
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


def _register_commands() -> None:
    """Commands that live in their own modules (they import the option aliases above)."""
    from specscope.bench.command import bench
    from specscope.doctor_command import doctor
    from specscope.layerskip_command import layerskip_search
    from specscope.lesson.command import lesson
    from specscope.mtp_command import mtp_app
    from specscope.trim_command import trim

    app.command()(trim)
    app.command("layerskip-search")(layerskip_search)
    app.command()(bench)
    app.command()(doctor)
    app.command()(lesson)
    app.add_typer(mtp_app, name="mtp")


_register_commands()


def main() -> None:
    try:
        app()
    except SpecScopeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
