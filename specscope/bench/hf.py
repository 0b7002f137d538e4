"""The transformers reference: `model.generate` on the session's own target and drafter models.

Rows (see grid.py):
  hf-plain               plain `generate`: is our plain loop as fast as transformers' own?
  hf-assisted            assisted generation, the same drafter, exactly K draft tokens a step
                         (constant schedule, no confidence early stop)
  hf-assisted-heuristic  transformers' adaptive drafting: the heuristic schedule starting at K
                         (+2 after a fully accepted draft, -1 otherwise) and its default
                         assistant confidence threshold
  hf-prompt-lookup       prompt lookup decoding with K tokens (prompt_lookup_num_tokens=K)

Each call runs with a clean GenerationConfig (the models' own generation_config.json may ask for
sampling, top-k or a repetition penalty, which would make the comparison unfair), the same stop
tokens as our loop, and the same clock. transformers reports no per-step records, so the steps
are observed with a forward pre-hook on the target: each target forward is one verification step;
its input length and the cache length give the number of draft tokens it checked, and the next
step's cache length gives how many tokens the step committed.
"""
from __future__ import annotations

import time
import torch

from specscope.bench.grid import Config
from specscope.bench.measured import Measured, sync
from specscope.core.controls import Controls
from specscope.core.errors import SpecScopeError
from specscope.core.greedy import clean_generation_config


class StepObserver:
    """Records (input length, cache length) of every forward call of the target model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        try:
            cached = int(cache.get_seq_length()) if cache is not None else None
        except Exception:  # a cache type without a length: per-step details stay unknown
            cached = None
        self.calls.append((int(ids.shape[-1]) if ids is not None else 0, cached))

    def close(self) -> None:
        self.handle.remove()

    def steps(self, prompt_len: int, final_len: int) -> list[tuple[int, int]] | None:
        """Per step (drafted, accepted); None where the calls do not fit the expected pattern."""
        if not self.calls or any(c is None for _, c in self.calls):
            return None
        out = []
        committed = prompt_len
        for i, (n_in, cached) in enumerate(self.calls):
            drafted = cached + n_in - committed
            after = self.calls[i + 1][1] + 1 if i + 1 < len(self.calls) else final_len
            emitted = after - committed
            if drafted < 0 or emitted < 1 and i + 1 < len(self.calls):
                return None
            out.append((drafted, max(0, min(drafted, emitted - 1))))
            committed = after
        return out


def generation_kwargs(session, config: Config, controls: Controls) -> dict:
    eos = sorted(session.decoder.eos_ids)
    pad = session.tokenizer.pad_token_id
    kw = dict(max_new_tokens=controls.max_new_tokens, eos_token_id=eos,
              pad_token_id=pad if pad is not None else eos[0], repetition_penalty=1.0)
    if controls.temperature > 0:
        kw.update(do_sample=True, temperature=controls.temperature, top_p=controls.top_p,
                  top_k=controls.top_k)
    else:
        kw.update(do_sample=False)
    k = int(config.draft_len or 0)
    if config.method == "hf-prompt-lookup":
        kw["prompt_lookup_num_tokens"] = k
    elif config.method.startswith("hf-assisted"):
        if session.drafter_lm is None:
            raise SpecScopeError(f"{config.method} needs a profile with a drafter")
        kw["assistant_model"] = session.drafter_lm.model
    elif config.method != "hf-plain":
        raise SpecScopeError(f"unknown transformers reference row '{config.method}'")
    return kw


def configure_assistant(session, config: Config) -> None:
    if not config.method.startswith("hf-assisted"):
        return
    gc = session.drafter_lm.model.generation_config
    gc.num_assistant_tokens = int(config.draft_len)
    if config.method == "hf-assisted":
        gc.num_assistant_tokens_schedule = "constant"
        gc.assistant_confidence_threshold = 0.0  # no early stop: exactly K draft tokens a step
    else:
        gc.num_assistant_tokens_schedule = "heuristic"  # threshold left at transformers' default


def param_ratio(session, config: Config) -> float:
    if config.method.startswith("hf-assisted"):
        return session.drafter_lm.read_params() / session.target.read_params()
    return 0.0


def truncate_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[: i + 1]
    return tokens


def run_hf(session, ids: list[int], config: Config, controls: Controls) -> Measured:
    target = session.target.model
    models = [target] + ([session.drafter_lm.model] if session.drafter_lm is not None else [])
    x = torch.tensor([ids], device=session.target.device)
    with clean_generation_config(*models):
        configure_assistant(session, config)
        kw = generation_kwargs(session, config, controls)
        torch.manual_seed(controls.seed)
        observer = StepObserver(target)
        try:
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = target.generate(x, attention_mask=torch.ones_like(x), **kw)
            sync(session.target.device)
            wall = time.perf_counter() - t0
        finally:
            observer.close()
    produced = out[0, len(ids):].tolist()
    tokens = truncate_at_eos(produced, session.decoder.eos_ids)
    stop = "eos" if tokens and tokens[-1] in session.decoder.eos_ids else "max_new_tokens"
    per_step = observer.steps(len(ids), len(ids) + len(produced))
    steps = len(observer.calls)
    pos_d: list[int] = []
    pos_a: list[int] = []
    drafted = accepted = None
    if per_step is not None:
        drafted = sum(d for d, _ in per_step)
        accepted = sum(a for _, a in per_step)
        for d, a in per_step:
            while len(pos_d) < d:
                pos_d.append(0)
                pos_a.append(0)
            for j in range(d):
                pos_d[j] += 1
                pos_a[j] += j < a
    return Measured(tokens, wall, steps, drafted, accepted, pos_d, pos_a, param_ratio(session, config),
                    stop)
