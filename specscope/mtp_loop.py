"""The long-running parts of `specscope mtp train`, behind rich progress bars: self-distillation
with a resumable on-disk cache, and the training loop with its budget, evaluations and
checkpoints."""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from specscope.core.files import atomic_write
from specscope.core.mtp_train import Sample, evaluate, self_distill, sequence_loss, teacher_hidden_shared
from specscope.frontends.loading import loading_progress
from specscope.frontends.progress import make_progress

EVAL_EVERY_S = 90.0
WARMUP_STEPS = 10


def bars(console: Console):
    """A progress callback (stage, done, total) drawing one bar per stage; without a terminal,
    a line per stage now and then."""
    return loading_progress(console, lines=True)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def self_distil_cached(model, prompts: list[list[int]], max_new_tokens: int, eos: set[int], pad: int,
                       batch: int, path: Path, console: Console, sample: int = 0,
                       temperature: float = 0.0,
                       writer: str = "the target") -> tuple[list[list[int]], int]:
    """The answers of `model` (the target; the drafter for --sampled-by drafter) to every
    prompt, generated `batch` at a time (similar lengths together, so left padding wastes little)
    and saved after each batch; answers already in `path` (keyed by the prompt's ids, and for
    sampled answers by sample number and temperature) are reused. `sample` 0 is the greedy answer; sample s > 0 is drawn at `temperature`, seeded
    by s and the batch. Returns (answers, how many came from the file)."""
    done: dict[str, list[int]] = {}
    if path.is_file():
        try:
            done = json.loads(path.read_text())
        except (OSError, ValueError):
            done = {}
    keys = [json.dumps(p) if sample == 0 else f"{json.dumps(p)}#sample{sample}@{temperature:g}"
            for p in prompts]
    resumed = sum(k in done for k in keys)
    todo = sorted((i for i, k in enumerate(keys) if k not in done), key=lambda i: len(prompts[i]))
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[tokens]} tokens"), TimeElapsedColumn(), TimeRemainingColumn()]
    with make_progress(console, columns, lines=True, transient=True) as progress:
        what = (f"{writer} answers" if sample == 0
                else f"sampled answers #{sample} by {writer.removeprefix('the ')} (T={temperature:g})")
        task = progress.add_task(f"self-distillation: {what}", total=len(prompts),
                                 completed=resumed, tokens=sum(len(done[k]) for k in keys if k in done))
        for b in range(0, len(todo), batch):
            idx = todo[b:b + batch]
            seed = sample * 1_000_003 + b
            answers = self_distill(model, [prompts[i] for i in idx], max_new_tokens, eos, pad,
                                   temperature if sample else 0.0, seed)
            for i, ans in zip(idx, answers):
                done[keys[i]] = ans
            _write_json(path, done)
            progress.update(task, completed=sum(k in done for k in keys),
                            tokens=sum(len(done[k]) for k in keys if k in done))
    return [done[k] for k in keys], resumed


def ids_digest(ids: list[int], n: int = 16) -> str:
    """A name for a token sequence: the first n hex digits of the sha256 of its JSON."""
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:n]


def _read_hidden(path: Path, length: int) -> torch.Tensor | None:
    """The states saved at `path` when they are there, readable and `length` rows long."""
    from safetensors.torch import load_file

    try:
        h = load_file(str(path))["hidden"]
    except Exception:  # missing or damaged: computed again
        return None
    return h if h.shape[0] == length else None


def hidden_cached(model, samples: list[Sample], folder: Path, console: Console) -> tuple[int, int]:
    """Set every sample's teacher-forced hidden states: read from `folder` (one safetensors file
    per sequence, named by its ids' digest; the folder is per target, dtype and device) where
    there, else computed (the samples of one prompt together: the prompt runs once) and saved
    there. Returns (computed, loaded) sequence counts."""
    from safetensors.torch import save_file

    groups: dict[tuple, list[Sample]] = {}
    for i, s in enumerate(samples):
        key = tuple(s.ids[:s.prompt_len]) if s.prompt_len else ("alone", i)
        groups.setdefault(key, []).append(s)
    folder.mkdir(parents=True, exist_ok=True)
    loaded = computed = tokens = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[tokens]} tokens"), TimeElapsedColumn(), TimeRemainingColumn()]
    with make_progress(console, columns, lines=True, transient=True) as progress:
        task = progress.add_task("teacher-forced hidden states", total=len(samples), tokens=0)
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
            progress.update(task, advance=len(group), tokens=tokens)
    return computed, loaded


def train_loop(head, embed, weight, rows, train_set, held_out, depth: int, beta: float, lr: float,
               minutes: float, max_tokens: int | None, amp, seed: int, checkpoint,
               console: Console, labels: str = "target", before: dict | None = None,
               keep: str = "best") -> tuple[dict, bool]:
    """AdamW over the head's weights, one sequence a step, until the time or token budget is
    spent (learning rate: short warm-up, then cosine to a tenth). Evaluates on the held-apart
    samples every EVAL_EVERY_S seconds; Ctrl-C stops.

    keep="best": the head ends with the weights that scored best on the held-apart samples
    (score: the sum of the greedy chain acceptances at steps 1..depth, the tokens a chain of
    `depth` adds beyond the target's own), counting the weights it started with; checkpoints
    are written only when the score improves, so the artifact is always the best so far. A
    small training set overfits (training loss far below the held-apart one), and the last
    weights need not be the best. keep="last": the last weights, checkpointed at every
    evaluation. The result's held-apart numbers are those of the kept weights; "last" holds
    the last weights' when they differ.
    `before`: a resumed head's totals (steps, tokens, seconds); the checkpoints count them in."""
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    budget_s = minutes * 60
    state = {"steps": 0, "tokens": 0, "train_loss": float("nan"), "held_loss": float("nan"),
             "held_acceptance": [0.0] * depth, "seconds": 0.0}
    t0 = last_eval = time.perf_counter()

    def used() -> float:
        frac = (time.perf_counter() - t0) / budget_s
        if max_tokens:
            frac = max(frac, state["tokens"] / max_tokens)
        return min(frac, 1.0)

    best: dict = {"score": -math.inf}

    def held() -> bool:
        """Evaluate; with keep="best", remember the weights when they beat the best so far.
        True when the current weights are the ones to keep."""
        with amp:
            state["held_loss"], state["held_acceptance"] = evaluate(head, embed, weight, rows, held_out,
                                                                    depth, beta, labels)
        score = sum(state["held_acceptance"])
        if keep == "last" or score > best["score"]:
            best.update(score=score, step=state["steps"], loss=state["held_loss"],
                        acceptance=list(state["held_acceptance"]),
                        weights={k: v.detach().clone() for k, v in head.state_dict().items()}
                        if keep == "best" else None)
            return True
        return False

    def totals() -> dict:
        """This run's state with a resumed head's steps, tokens and seconds added."""
        out = {**state, "seconds": round(time.perf_counter() - t0, 1)}
        for key in ("steps", "tokens", "seconds"):
            out[key] = round(out[key] + (before or {}).get(key, 0), 1)
        return out

    def kept() -> dict:
        """totals(), with the held-apart numbers of the weights kept; the last weights' numbers
        under "last" when those are not the ones kept."""
        out = totals()
        if "step" not in best:  # stopped before the first evaluation
            return out
        if keep == "best" and best["step"] != state["steps"]:
            out["last"] = {"held_loss": out["held_loss"], "held_acceptance": out["held_acceptance"]}
            out["held_loss"], out["held_acceptance"] = best["loss"], best["acceptance"]
        out["kept_step"] = best["step"] + (before or {}).get("steps", 0)
        return out

    columns = [TextColumn("training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TextColumn("{task.fields[tokens]} tokens  loss {task.fields[loss]}  "
                          "held-apart acceptance {task.fields[acc]}"), TimeElapsedColumn()]
    interrupted = False
    with make_progress(console, columns, lines=True, transient=True) as progress:
        task = progress.add_task("train", total=100, tokens=0, loss="-", acc="-")
        ema = None
        try:
            held()
            while used() < 1.0:
                order = list(train_set)
                rng.shuffle(order)
                for sample in order:
                    frac = used()
                    if frac >= 1.0:
                        break
                    warm = min(1.0, (state["steps"] + 1) / WARMUP_STEPS)
                    for g in opt.param_groups:
                        g["lr"] = lr * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
                    with amp:
                        loss, st = sequence_loss(head, embed, weight, rows, sample, depth, beta,
                                                 labels)
                    if loss is None:
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    state["steps"] += 1
                    state["tokens"] += st.tokens
                    ema = st.loss if ema is None else 0.9 * ema + 0.1 * st.loss
                    state["train_loss"] = ema
                    if time.perf_counter() - last_eval > EVAL_EVERY_S:
                        if held():
                            checkpoint(kept())
                        last_eval = time.perf_counter()
                    progress.update(task, completed=100 * used(), tokens=state["tokens"],
                                    loss=f"{ema:.3f}",
                                    acc=" ".join(f"{a:.2f}" for a in state["held_acceptance"])
                                    + (f" (best {best['score']:.2f} at step {best['step']})"
                                       if keep == "best" else ""))
            held()
        except KeyboardInterrupt:
            interrupted = True
    result = kept()
    if best.get("weights") is not None:  # (None: keep="last", or stopped before any evaluation)
        head.load_state_dict(best["weights"])
    return result, interrupted
