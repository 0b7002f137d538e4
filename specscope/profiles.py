"""Profiles: YAML files naming a target, a drafter and default settings.

Looked up by name among the built-ins (`specscope/builtin_profiles/`, package data) and in
~/.config/specscope/profiles, or given as a path to a .yaml file.

The built-ins live inside the package, next to this module, rather than in a top-level
`profiles/` folder: a wheel or a regular `pip install` carries only the package, so that is the
one place found the same way from a checkout, an editable install and a wheel, with no copy made
at build time and no second copy to drift.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from specscope.core.errors import SpecScopeError
from specscope.core.methods import METHODS
from specscope.core.models import DTYPES
from specscope.core.quant import DRAFT_MODES, TARGET_MODES, check_mode

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin_profiles"
DEFAULT_PROFILE = "qwen2.5-coder"


def profile_dirs() -> list[Path]:
    user = Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"))
    return [BUILTIN_DIR, user / "specscope" / "profiles"]


@dataclass
class Profile:
    name: str
    target: str
    drafter: str | None = None
    description: str = ""
    dtype: str = "bfloat16"  # or auto: chosen from this machine's measured costs (auto.py)
    device: str = "cpu"
    method: str | None = None  # a method name, or auto (measured); None: draft with a drafter, else ar
    draft_len: int | str = 5  # a fixed length, or auto / auto:heuristic (adapted every step)
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    chat_template: bool = True
    system_prompt: str | None = None
    eos_tokens: list[str] = field(default_factory=list)
    trimmed: str | None = None  # a VocabTrim artifact for the drafter
    draft_quant: str = "none"  # weight-only quantization of the drafter: none, int8, int4, auto
    quant: str = "none"  # of the target (outputs then match the quantized target's): none, int8, w8a8
    # The draft model's KV cache: 4 attention sinks + the last draft_window tokens (0: all). A
    # context shorter than the window is drafted exactly as unbounded, so the default changes
    # nothing on short prompts and keeps draft cost flat on long ones (docs: LongSpec).
    draft_window: int = 1024
    # what runs the models: torch (safetensors, any transformers model), llama.cpp (the GGUF
    # files as stored, through llama-cpp-python: core/llamacpp.py), or auto (measured, auto.py)
    backend: str = "torch"
    # A served target (`target: http://HOST:PORT`, docs/remote.md): its engine, the served model's
    # name where the server must be checked against it, and the tokenizer to use (a model source;
    # default: the drafter's), checked against the server's at connect time.
    engine: str = "llama.cpp"
    model: str | None = None
    tokenizer: str | None = None
    # The drafter in its own worker process (specscope/drafting.py): drafting ahead while the
    # target verifies (overlap), the worker's threads (0: half the cores with a worker, else no
    # worker) and device (None: the target's)
    overlap: bool = False
    draft_threads: int = 0
    draft_device: str | None = None
    # FastMTP heads (mtp, mtp-tree): where the committed text is mostly of one non-Latin script,
    # the first script_rows tokens of that script are drafting rows too (FastMTP's language-aware
    # vocabulary, core/scripts.py); 0: off
    script_rows: int = 0
    path: str = ""

    @property
    def target_url(self) -> str | None:
        from specscope.remote.http import is_url

        return self.target if is_url(self.target) else None

    @property
    def adaptive_rule(self) -> str | None:
        """'cost' or 'heuristic' when draft_len is auto[:rule], else None (a fixed length)."""
        if isinstance(self.draft_len, int):
            return None
        if self.draft_len == "learned":  # H-RAD's predictor (core/adaptive_learned.py)
            return "learned"
        return self.draft_len.partition(":")[2] or "cost"

    @property
    def start_len(self) -> int:
        """The fixed length, or where an adaptive length starts."""
        return self.draft_len if isinstance(self.draft_len, int) else 5


AUTO = "auto"  # dtype, draft_quant, method: chosen from this machine's measurements (auto.py)
AUTO_LENS = ("auto", "auto:cost", "auto:heuristic", "auto:learned", "learned")
_TYPES = {"name": str, "target": str, "drafter": (str, type(None)), "description": str,
          "dtype": str, "device": str, "method": (str, type(None)), "draft_len": (int, str), "temperature": (int, float),
          "top_p": (int, float), "max_new_tokens": int, "chat_template": bool,
          "system_prompt": (str, type(None)), "eos_tokens": list, "trimmed": (str, type(None)),
          "draft_quant": str, "quant": str, "draft_window": int,
          "engine": str, "model": (str, type(None)), "tokenizer": (str, type(None)), "backend": str,
          "overlap": bool, "draft_threads": int, "draft_device": (str, type(None)),
          "script_rows": int}
BACKENDS = ("torch", "llama.cpp")


def _find(name_or_path: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise SpecScopeError(f"profile file not found: {p}")
        return p
    for d in profile_dirs():
        for suffix in (".yaml", ".yml"):
            if (d / f"{name_or_path}{suffix}").is_file():
                return d / f"{name_or_path}{suffix}"
    known = ", ".join(p.name for p in list_profiles()) or "none"
    raise SpecScopeError(f"unknown profile '{name_or_path}' (known: {known})")


def parse_profile(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecScopeError(f"{path}:{where} malformed YAML ({getattr(e, 'problem', e)})") from None
    except OSError as e:
        raise SpecScopeError(f"cannot read profile {path}: {e.strerror}") from None
    if not isinstance(data, dict):
        raise SpecScopeError(f"{path}: a profile must be a mapping of fields")
    data.setdefault("name", path.stem)
    known = {f.name for f in fields(Profile)} - {"path"}
    for key, value in data.items():
        if key not in known:
            raise SpecScopeError(f"{path}: unknown field '{key}' (known: {', '.join(sorted(known))})")
        if not isinstance(value, _TYPES[key]) or (isinstance(value, bool) and _TYPES[key] is not bool):
            raise SpecScopeError(f"{path}: field '{key}' has the wrong type ({type(value).__name__})")
    if "target" not in data:
        raise SpecScopeError(f"{path}: missing field 'target'")
    if isinstance(data.get("draft_len"), str) and data["draft_len"] not in AUTO_LENS:
        raise SpecScopeError(f"{path}: field 'draft_len' must be a number or one of {', '.join(AUTO_LENS)}")
    if data.get("dtype", "bfloat16") not in (*DTYPES, AUTO):
        raise SpecScopeError(f"{path}: field 'dtype' must be one of {', '.join(DTYPES)} or auto")
    if data.get("method") is not None and data["method"] not in (*METHODS, AUTO):
        raise SpecScopeError(f"{path}: field 'method' must be one of {', '.join(METHODS)} or auto")
    for key, modes in (("draft_quant", (*DRAFT_MODES, AUTO)), ("quant", TARGET_MODES)):
        if data.get(key, "none") not in modes:
            raise SpecScopeError(f"{path}: field '{key}' must be one of {', '.join(modes)}")
    if data.get("backend", "torch") not in (*BACKENDS, AUTO):
        raise SpecScopeError(f"{path}: field 'backend' must be one of {', '.join(BACKENDS)} or auto")
    if data.get("draft_window", 0) < 0:
        raise SpecScopeError(f"{path}: field 'draft_window' must be >= 0 (0: unbounded)")
    if data.get("script_rows", 0) < 0:
        raise SpecScopeError(f"{path}: field 'script_rows' must be >= 0 (0: off)")
    if not all(isinstance(t, str) for t in data.get("eos_tokens", [])):
        raise SpecScopeError(f"{path}: field 'eos_tokens' must be a list of strings")
    return Profile(**data, path=str(path))


def with_remote(profile: Profile, target_url: str | None = None, engine: str | None = None) -> Profile:
    """The profile with --target-url / --engine applied. A served target's `auto` values are
    fixed here (the measured choice is about a local target): float32 for the local drafter, its
    weights unquantized, the draft method when there is a drafter."""
    from specscope.remote.engines import ENGINES
    from specscope.remote.http import is_url

    if engine is not None and engine not in ENGINES:
        raise SpecScopeError(f"--engine {engine}: choose from {', '.join(ENGINES)}")
    if target_url is not None and not is_url(target_url):
        raise SpecScopeError(f"--target-url {target_url}: use http://HOST:PORT")
    if engine is not None and target_url is None and not profile.target_url:
        raise SpecScopeError("--engine needs a served target (--target-url or `target: http://...`)")
    profile = replace(profile, target=target_url or profile.target, engine=engine or profile.engine)
    if not profile.target_url:
        return profile
    if profile.engine not in ENGINES:
        raise SpecScopeError(f"profile '{profile.name}': engine must be one of {', '.join(ENGINES)}")
    return replace(profile, dtype="float32" if profile.dtype == AUTO else profile.dtype,
                   draft_quant="none" if profile.draft_quant == AUTO else profile.draft_quant,
                   method=("draft" if profile.drafter else "ar") if profile.method == AUTO else profile.method)


def with_quant(profile: Profile, quant: str | None = None, draft_quant: str | None = None) -> Profile:
    """The profile with --quant / --draft-quant applied (None keeps the profile's), checked."""
    if quant is not None:
        check_mode(quant, TARGET_MODES, "--quant")
    if draft_quant is not None:
        check_mode(draft_quant, (*DRAFT_MODES, AUTO), "--draft-quant")
        if draft_quant != "none" and not profile.drafter:
            raise SpecScopeError(f"--draft-quant {draft_quant}: profile '{profile.name}' has no drafter")
    return replace(profile, quant=quant or profile.quant, draft_quant=draft_quant or profile.draft_quant)


def with_backend(profile: Profile, backend: str | None = None) -> Profile:
    """The profile with --backend applied (None keeps the profile's), checked. On llama.cpp the
    draft model's cache is unbounded (the profile's draft_window is a torch setting)."""
    backend = backend or profile.backend
    if backend not in (*BACKENDS, AUTO):
        raise SpecScopeError(f"--backend must be one of {', '.join(BACKENDS)} or auto, got '{backend}'")
    profile = replace(profile, backend=backend)
    return replace(profile, draft_window=0) if backend == "llama.cpp" else profile


def quant_label(profile: Profile) -> str:
    """'target int8, drafter int4' (what runs quantized), '' when nothing is; on llama.cpp
    'llama.cpp: target q4_k_m, drafter q8_0' (the GGUF types, once loaded)."""
    parts = [f"target {profile.quant}"] if profile.quant != "none" else []
    if profile.drafter and profile.draft_quant not in ("none", AUTO):
        parts.append(f"drafter {profile.draft_quant}")
    if profile.backend == "llama.cpp":
        return "llama.cpp" + (f": {', '.join(parts)}" if parts else "")
    return ", ".join(parts)


def load_profile(name_or_path: str | Profile | None) -> Profile:
    """A profile by name or path (a Profile is returned as it is, with a served target's autos
    fixed: with_remote)."""
    if isinstance(name_or_path, Profile):
        return with_remote(name_or_path)
    return with_remote(parse_profile(_find(name_or_path or DEFAULT_PROFILE)))


def list_profiles() -> list[Profile]:
    seen: dict[str, Profile] = {}
    for d in profile_dirs():
        for path in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
            try:
                prof = parse_profile(path)
            except SpecScopeError:
                continue
            seen.setdefault(path.stem, prof)
    return list(seen.values())
