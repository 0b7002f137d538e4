"""Which of the prompts bench would measure an artifact in use was fitted or selected on.

`trim` records the prompts it calibrated on in its artifact's metadata (`used_prompts`),
`layerskip-search` those it searched on in its result (JSON, keyed by the target's weights), and
`mtp train` those it trained and selected on (and its --corpus's Spec-Bench prompts, and the ranking's
trimmed head's) under `training.used_prompts`: their ids, and their text's digests, by which
prompts are matched (the same prompt in another file is the same prompt). An artifact made before
they were recorded cannot be checked: bench says so in one line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from specscope.core.errors import SpecScopeError
from specscope.prompts import Prompt


@dataclass
class Overlap:
    flagged: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> artifacts that used it
    unchecked: list[str] = field(default_factory=list)  # artifacts that record no prompts

    def as_dict(self, allowed: bool) -> dict:
        return {"allowed": allowed, "prompts": self.flagged, "unchecked": self.unchecked}


def read_used(path: str | Path) -> dict | None:
    """The `used_prompts` record of a trimmed head or a FastMTP head (metadata only, no tensors
    read) or of a layer-skip search result (JSON), or None when the artifact records none."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    try:
        if path.suffix == ".json":
            meta = json.loads(path.read_text())
        else:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("specscope", "{}"))
    except Exception:  # unreadable: the artifact's own loader refuses it with its own line
        return None
    used = meta.get("used_prompts") or (meta.get("training") or {}).get("used_prompts")
    return used if isinstance(used, dict) and used.get("digests") is not None else None


def artifacts_in_use(prof, trimmed: Path | None, methods: list[str] | None) -> list[tuple[str, Path]]:
    """(label, path) of the artifacts a bench of `methods` (None: every method available) uses:
    the trimmed drafter head where a drafter method runs, the FastMTP head where an mtp method does."""
    from specscope.session import NEEDS_DRAFTER, NEEDS_MTP_HEAD, mtp_head

    out = []
    trimmed = trimmed or prof.trimmed
    if trimmed and (methods is None or any(m in NEEDS_DRAFTER for m in methods)):
        out.append(("trimmed head", Path(trimmed).expanduser()))
    head = mtp_head(prof)
    if head is not None and (methods is None or any(m in NEEDS_MTP_HEAD for m in methods)):
        out.append(("FastMTP head", head))
    return out


def layerskip_in_use(session, methods: list[str] | None) -> list[tuple[str, Path]]:
    """The layer-skip search result a bench of `methods` drafts with, once the target is loaded
    (the result is keyed by its weights); none when layerskip is not measured or runs on the
    default layers (nothing searched)."""
    if (methods is not None and "layerskip" not in methods) or "layerskip" not in session.decoder.methods:
        return []
    model = getattr(session.target, "model", None)
    if model is None:
        return []
    from specscope.core.layerskip_search import load_result, result_path

    return [("layer-skip search", result_path(model))] if load_result(model) is not None else []


def find_overlap(prompts: list[Prompt], artifacts: list[tuple[str, Path]]) -> Overlap:
    result = Overlap()
    for label, path in artifacts:
        used = read_used(path)
        if used is None:
            result.unchecked.append(f"{label} {path}")
            continue
        digests = set(used["digests"])
        for p in prompts:
            if p.digest in digests:
                result.flagged.setdefault(p.id, []).append(label)
    return result


def merge(a: Overlap, b: Overlap) -> Overlap:
    flagged = {k: list(v) for k, v in a.flagged.items()}
    for k, v in b.flagged.items():
        flagged.setdefault(k, []).extend(v)
    return Overlap(flagged, a.unchecked + b.unchecked)


def refusal(overlap: Overlap, artifacts: list[tuple[str, Path]]) -> SpecScopeError:
    ids = list(overlap.flagged)
    labels = list(dict.fromkeys(label for used in overlap.flagged.values() for label in used))
    where = ", ".join(f"{label} {path}" for label, path in artifacts if label in labels)
    shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
    return SpecScopeError(f"{len(ids)} of the prompts to measure {'was' if len(ids) == 1 else 'were'} "
                          f"used to fit or select the "
                          f"{where} (ids {shown}): measure the report split (the default for the "
                          "packaged set) or other prompts, or pass --allow-overlap to measure "
                          "them flagged")
