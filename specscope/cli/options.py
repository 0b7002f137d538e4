"""What the `specscope` commands share: option aliases, prompt reading, error handling.

Every known problem (SpecScopeError) becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.core.errors import SpecScopeError

# Options shared by generate, chat and bench.
Profile = Annotated[Optional[str], typer.Option("--profile", "-p", metavar="NAME|FILE", help="Profile name or YAML path (default: qwen2.5-coder).")]
Method = Annotated[Optional[str], typer.Option("--method", "-m", metavar="METHOD", help="Drafting method: ar, draft, lookup, ... (see `specscope profiles`).")]
DraftLen = Annotated[Optional[str], typer.Option("--draft-len", "-k", metavar="K|auto|learned", help="Draft tokens per step (0-32), or auto (cost-aware), or auto:heuristic (+2/-1), or learned (H-RAD's predictor: specscope hrad train).")]
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
Overlap = Annotated[Optional[bool], typer.Option("--overlap/--no-overlap", help="Draft the next step while the target verifies this one (draft, tree): the drafter runs in its own worker process (default: the profile's).", show_default=False)]
DraftThreads = Annotated[Optional[int], typer.Option("--draft-threads", metavar="N", help="Run the drafter in its own worker process on N threads; the target gets the other cores (default with --overlap: half).")]
DraftDevice = Annotated[Optional[str], typer.Option("--draft-device", metavar="DEVICE", help="Run the drafter in its own worker process on this device (e.g. cpu while the target is on cuda).")]
DraftQuant = Annotated[Optional[str], typer.Option("--draft-quant", metavar="none|int8|int4", help="Weight-only quantization of the drafter: none, int8 or int4 (output unchanged; default: the profile's).")]
TargetUrl = Annotated[Optional[str], typer.Option("--target-url", metavar="URL", help="A served target, http://HOST:PORT (llama-server, vLLM, SGLang; see docs/remote.md); the profile's drafter runs here.")]
Engine = Annotated[Optional[str], typer.Option("--engine", metavar="ENGINE", help="The served target's engine: llama.cpp (default), vllm, sglang or openai.")]
ApiKey = Annotated[Optional[str], typer.Option("--api-key", metavar="KEY", help="The served target's API key (or $SPECSCOPE_API_KEY); never printed or written to results.", show_default=False)]
DraftWindow = Annotated[Optional[int], typer.Option("--draft-window", metavar="W", help="Bound the draft model's KV cache to 4 sink tokens + the last W tokens (0: unbounded; default: the profile's, 1024).")]
Backend = Annotated[Optional[str], typer.Option("--backend", metavar="torch|llama.cpp|auto", help="What runs the models: torch, llama.cpp (the GGUF files as stored; needs the llamacpp extra) or auto (measured; default: the profile's).")]
Quant = Annotated[Optional[str], typer.Option("--quant", metavar="none|int8|w8a8", help="Quantization of the target: none, int8 weights, or w8a8 (int8 weights and activations, integer sums) (output is then the quantized target's own; default: the profile's).")]


def remote_profile(profile: str | None, target_url: str | None, engine: str | None,
                   api_key: str | None):
    """--target-url / --engine / --api-key: the profile (a Profile) pointed at a served target, or
    the profile's name unchanged when none is given. The key goes to $SPECSCOPE_API_KEY for the
    client to send, so it is never part of a profile, an option echo or a result file."""
    import os

    from specscope.profiles import load_profile, with_remote

    if api_key:
        os.environ["SPECSCOPE_API_KEY"] = api_key
    if target_url is None and engine is None:
        return profile
    return with_remote(load_profile(profile), target_url, engine)


def parse_draft_len(value: str | None) -> tuple[int | None, bool | None, str | None]:
    """'5' -> (5, False, None); 'auto' -> (None, True, 'cost'); 'auto:heuristic' -> (None, True, 'heuristic')."""
    if value is None:
        return None, None, None
    value = value.strip().lower()
    if value in ("auto", "auto:cost"):
        return None, True, "cost"
    if value == "auto:heuristic":
        return None, True, "heuristic"
    if value in ("learned", "auto:learned"):  # H-RAD's predictor (`specscope hrad train`)
        return None, True, "learned"
    try:
        return int(value), False, None
    except ValueError:
        raise SpecScopeError(f"--draft-len must be a number, auto, auto:heuristic or learned, got '{value}'") from None


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


def require_terminal(command: str) -> None:
    """A full-screen app without a terminal (piped, redirected, under a job runner) cannot read
    keys or draw; Textual would then spin at 100% CPU forever. Refuse instead."""
    missing = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout))
               if not (hasattr(stream, "isatty") and stream.isatty())]
    if missing:
        raise SpecScopeError(f"`specscope {command}` needs a terminal, and {' and '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} not one; for scripts and pipes "
                             "use `specscope generate` (--json for one event a line)")
