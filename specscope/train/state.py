"""The resume state beside an artifact: what `--resume` needs to continue a run rather than
restart it. The artifact holds the kept weights, rounded to the dtype it is saved in; this file
holds the last float32 weights, the optimizer's state (AdamW's moments and step count), the
schedule's position and budget, the data order and the best weights so far (train/loop.py).

It belongs to one artifact: both carry the same `state_id` (in the artifact's training
metadata), and a state whose id differs (another run wrote the artifact since) is not used.
Written atomically (core/files.py), like the artifact.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import torch

from specscope.core.files import atomic_write

VERSION = 1


def state_path(artifact: Path) -> Path:
    """head.safetensors -> head.train.pt, in the same folder."""
    artifact = Path(artifact)
    return artifact.with_name(f"{artifact.stem}.train.pt")


def new_state_id() -> str:
    return uuid.uuid4().hex


def save_state(path: Path, state_id: str, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save({**state, "version": VERSION, "id": state_id}, tmp))


def load_state(path: Path, state_id: str | None, device=None) -> dict | None:
    """The state at `path` when it is there, readable, of this format and of the run `state_id`;
    else None (the run then starts its optimizer and schedule over)."""
    path = Path(path)
    if not state_id or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # damaged or from another version of torch: started over
        return None
    if not isinstance(state, dict) or state.get("version") != VERSION or state.get("id") != state_id:
        return None
    return state
