"""The training data's on-disk caches beside the artifact: the answers written for the
self-distillation (resumable after every batch) and the target's teacher-forced hidden states."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from specscope.core.files import atomic_write
from specscope.core.mtp_train import Sample, self_distill, teacher_hidden_shared
from specscope.train.events import Beat, Ended, Note, OnEvent, Progress, Started, ignore


def write_json(path: Path, data) -> None:
    """`data` as JSON at `path`, atomically (core/files.py), its folder made when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data)))


def ids_digest(ids: list[int], n: int = 16) -> str:
    """A name for a token sequence: the first n hex digits of the sha256 of its JSON."""
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:n]


def read_answers(path: Path) -> dict[str, list[int]]:
    """The answers saved at `path` ({} when there are none, or the file is damaged)."""
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return {}


def answer_key(prompt: list[int], sample: int = 0, temperature: float = 0.0) -> str:
    """An answer's key in its file: the prompt's ids, and for a sampled answer its number and
    temperature."""
    return json.dumps(prompt) if sample == 0 else f"{json.dumps(prompt)}#sample{sample}@{temperature:g}"


def length_batches(prompts: list[list[int]], batch: int,
                   required: int | None = None) -> list[tuple[int, int, list[int]]]:
    """(group, first, indices) batches of at most `batch` prompts: group 0 the first `required`
    prompts (all of them when `required` is None), group 1 the rest; each group sorted by length
    (ties in list order) and cut in turn, `first` the cut's offset in its sorted group (the
    sampled answers' seed: the same prompts make the same batches however many are done).
    Within a group the batches run in the order of their earliest prompt in the list."""
    n = len(prompts)
    groups = [list(range(n))] if required is None else \
        [list(range(min(required, n))), list(range(min(required, n), n))]
    out = []
    for g, members in enumerate(groups):
        ordered = sorted(members, key=lambda i: (len(prompts[i]), i))
        cuts = [(g, b, ordered[b:b + batch]) for b in range(0, len(ordered), batch)]
        out += sorted(cuts, key=lambda c: min(c[2]))
    return out


def self_distil_cached(model, prompts: list[list[int]], max_new_tokens: int, eos: set[int], pad: int,
                       batch: int, path: Path, on_event: OnEvent = ignore, sample: int = 0,
                       temperature: float = 0.0, writer: str = "the target",
                       deadline: float | None = None,
                       required: int = 0) -> tuple[list[list[int] | None], int]:
    """The answers of `model` (the target; the drafter for --sampled-by drafter) to every
    prompt, generated `batch` at a time (similar lengths together, so left padding wastes little)
    and saved after each batch; answers already in `path` (keyed by the prompt's ids, and for
    sampled answers by sample number and temperature) are reused. `sample` 0 is the greedy
    answer; sample s > 0 is drawn at `temperature`, seeded by s and the batch (batches are cut
    the same way whatever is on disk already). Reports the
    stage "answers" (prompts done, tokens), within a batch at every heartbeat, and from a timer
    while one decoding step runs long.
    `deadline` (a time.perf_counter() value): no batch starts after it, except those of the
    first `required` prompts (done first); those left without an answer are None.
    Batches: each group (the required prompts, the others) is cut into batches of similar
    lengths, and the batches run in the order of their earliest prompt, so a deadline still
    leaves the first prompts of the list (a spread of categories, train/budget.py) answered. A
    batch is as wide as its longest prompt: cut in the list's own order, a batch of 16 held
    one prompt near the length limit almost always, and reading it padded took half of the
    answers' time (about 110 s of every 220 s batch on the embedded pair, 2 cores).
    Returns (answers, how many came from the file)."""
    done = read_answers(path)
    keys = [answer_key(p, sample, temperature) for p in prompts]
    resumed = sum(k in done for k in keys)
    # the batches are cut from every prompt, answered or not (not from those left to do), so a
    # run that goes on after an interruption makes the same batches, with the same seeds and
    # padding, as one never interrupted: the same answers
    batches = length_batches(prompts, batch, None if deadline is None else required)
    left = sum(k not in done for k in keys)

    running = {"rows": 0, "steps": 0}  # the batch being decoded: its rows, steps so far

    def tokens() -> int:
        """Answer tokens so far: those saved, and the running batch's (a row that ended early
        counts to the step reached: an upper bound until its batch is saved)."""
        return sum(len(done[k]) for k in keys if k in done) + running["rows"] * running["steps"]

    def step(n: int) -> None:
        running["steps"] += n
        beat()

    what = (f"{writer} answers" if sample == 0
            else f"sampled answers #{sample} by {writer.removeprefix('the ')} (T={temperature:g})")
    on_event(Started("answers", f"self-distillation: {what}", len(prompts), resumed,
                     {"tokens": tokens()}))
    beat = Beat(lambda: on_event(Progress("answers", sum(k in done for k in keys),
                                          {"tokens": tokens()})))
    try:
        with beat:
            for group, b, idx in batches:
                idx = [i for i in idx if keys[i] not in done]
                if not idx:
                    continue
                if deadline is not None and group > 0 and time.perf_counter() >= deadline:
                    on_event(Note(f"{what}: the plan's time for them is spent, {left} prompts "
                                  "left (run the command again to go on)"))
                    break
                seed = sample * 1_000_003 + group * 100_003 + b
                running.update(rows=len(idx), steps=0)
                answers = self_distill(model, [prompts[i] for i in idx], max_new_tokens, eos, pad,
                                       temperature if sample else 0.0, seed, on_step=step)
                with beat.lock:
                    for i, ans in zip(idx, answers):
                        done[keys[i]] = ans
                    running.update(rows=0, steps=0)
                left -= len(idx)
                write_json(path, done)
                beat(force=True)
    finally:
        on_event(Ended("answers"))
    return [done.get(k) for k in keys], resumed


def _read_hidden(path: Path, length: int) -> torch.Tensor | None:
    """The states saved at `path` when they are there, readable and `length` rows long."""
    from safetensors.torch import load_file

    try:
        h = load_file(str(path))["hidden"]
    except Exception:  # missing or damaged: computed again
        return None
    return h if h.shape[0] == length else None


def hidden_cached(model, samples: list[Sample], folder: Path,
                  on_event: OnEvent = ignore) -> tuple[int, int]:
    """Set every sample's teacher-forced hidden states: read from `folder` (one safetensors file
    per sequence, named by its ids' digest; the folder is per target, dtype and device) where
    there, else computed (the samples of one prompt together: the prompt runs once) and saved
    there. Reports the stage "hidden" (sequences, tokens). Returns (computed, loaded) sequence
    counts."""
    groups: dict[tuple, list[Sample]] = {}
    for i, s in enumerate(samples):
        key = tuple(s.ids[:s.prompt_len]) if s.prompt_len else ("alone", i)
        groups.setdefault(key, []).append(s)
    folder.mkdir(parents=True, exist_ok=True)
    on_event(Started("hidden", "teacher-forced hidden states", len(samples), 0, {"tokens": 0}))
    counts = {"finished": 0, "tokens": 0}
    beat = Beat(lambda: on_event(Progress("hidden", counts["finished"], {"tokens": counts["tokens"]})))
    try:
        with beat:
            _hidden_groups(model, groups, folder, counts, beat)
    finally:
        on_event(Ended("hidden"))
    return counts.get("computed", 0), counts.get("loaded", 0)


def _hidden_groups(model, groups: dict, folder: Path, counts: dict, beat: Beat) -> None:
    from safetensors.torch import save_file

    loaded = computed = tokens = finished = 0
    for group in groups.values():
        todo = []
        for s in group:
            s.hidden = _read_hidden(folder / f"{ids_digest(s.ids, 24)}.safetensors", len(s.ids))
            if s.hidden is None:
                todo.append(s)
            else:
                s.hidden, loaded = s.hidden.to(model.device), loaded + 1
        if todo:
            n = todo[0].prompt_len if len(todo) > 1 else len(todo[0].ids)
            states = teacher_hidden_shared(model, todo[0].ids[:n], [s.ids[n:] for s in todo])
            for s, h in zip(todo, states):
                s.hidden = h
                atomic_write(folder / f"{ids_digest(s.ids, 24)}.safetensors",
                             lambda tmp, h=h: save_file({"hidden": h.detach().cpu().contiguous()}, tmp))
            computed += len(todo)
            tokens += n + sum(len(s.ids) - n for s in todo)
        finished += len(group)
        with beat.lock:
            counts.update(finished=finished, tokens=tokens, computed=computed, loaded=loaded)
        beat(force=True)
