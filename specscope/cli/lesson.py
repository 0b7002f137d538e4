"""`specscope lesson`: the guided lesson, as a Textual app or (`--plain`) as text."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.cli.options import Device, Dtype, Profile, Trimmed, friendly_errors


def find_trimmed(profile) -> Path | None:
    """A VocabTrim artifact for this profile in the cache (`specscope trim`'s default place)."""
    from specscope.core.embedded import cache_dir

    found = sorted((cache_dir() / "trimmed").glob(f"{profile.name}-top*.safetensors"))
    return found[0] if found else None


@friendly_errors
def lesson(
    profile: Profile = None,
    plain: Annotated[bool, typer.Option("--plain", help="Print the lesson as text (no TUI).")] = False,
    chapter: Annotated[Optional[list[int]], typer.Option("--chapter", "-c", help="Only these chapters (1-6, repeatable); the TUI starts at the first.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", help="Tokens per run (each chapter makes a few runs).")] = 32,
    dtype: Dtype = None,
    device: Device = None,
    trimmed: Trimmed = None,
) -> None:
    """A guided lesson on speculative decoding: six chapters, each a live run on the models."""
    from rich.console import Console

    from specscope.core.errors import SpecScopeError
    from specscope.frontends.loading import check_options, open_session
    from specscope.lesson.chapters import CHAPTERS
    from specscope.lesson.runs import Lesson
    from specscope.profiles import load_profile

    prof = load_profile(profile)
    check_options(prof, None, dtype, device, None, trimmed)
    if not 1 <= max_new_tokens <= 4096:
        raise SpecScopeError(f"--max-new-tokens must be between 1 and 4096, got {max_new_tokens}")
    bad = [c for c in chapter or [] if not 1 <= c <= len(CHAPTERS)]
    if bad:
        raise SpecScopeError(f"--chapter must be between 1 and {len(CHAPTERS)}, got {bad[0]}")
    if trimmed is not None and not Path(trimmed).expanduser().is_file():
        raise SpecScopeError(f"trimmed head not found: {trimmed}")
    if trimmed is None and prof.drafter and not prof.trimmed:
        trimmed = find_trimmed(prof)
    if plain:
        from specscope.lesson.plain import print_lesson

        session = open_session(prof, None, dtype, device, trimmed)
        print_lesson(Lesson(session, max_new_tokens), Console(highlight=False), chapter)
        return
    from specscope.tui.lesson_app import run_lesson

    run_lesson(prof, dtype, device, trimmed, max_new_tokens, chapter[0] if chapter else 1)
