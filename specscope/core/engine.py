"""The speculative decoding loop: draft, verify in one target pass, emit, repeat.

    for each step:
        proposal = drafter.propose(ids, k)                 # chain (or tree) of draft tokens
        p = target(ids[-1:] + proposal)                    # one forward pass, KV cache reused
        path, token = verify(proposal, p, q)               # greedy or rejection sampling
        ids += proposal[path] + [token]                    # caches roll back by common prefix

The target's cache always covers every committed token but the last one, so each step feeds the
last committed token plus the drafts. Plain decoding is the same loop with a drafter that proposes
nothing, so baseline and speculative runs are measured by the same code. Randomness lives on the
target's device (one generator per run, seeded from the controls).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping

import torch

from specscope.core.adaptive import AdaptiveLength
from specscope.core.methods import NEEDS_DRAFTER
from specscope.core.controls import Controls
from specscope.core.drafters.base import Drafter, DraftSettings, Proposal
from specscope.core.errors import SpecScopeError
from specscope.core.events import Drafted, Event, Finished, Prefilling, Started, Verified
from specscope.core.lm import CachedLM, common_prefix
from specscope.core.sampling import probs_from_logits
from specscope.core.stats import Stats
from specscope.core.text import IncrementalText
from specscope.core.tree import children, depths, is_chain
from specscope.core.verify import Verdict, chain, greedy_verify_tree, sample_verify_tree
from specscope.core.window import cache_bytes


class SpecDecoder:
    def __init__(self, target: CachedLM, tokenizer, drafters: Mapping[str, Callable[[], Drafter]],
                 eos_ids: set[int]) -> None:
        self.target = target
        self.tokenizer = tokenizer
        self.factories = dict(drafters)
        self.eos_ids = set(eos_ids)
        self._drafters: dict[str, Drafter] = {}
        # adaptive-length state per (method, rule): kept across the runs of a conversation, like
        # a learned setting; reset() forgets it
        self._policies: dict[tuple[str, str], AdaptiveLength] = {}
        # this machine's measured costs, where known (`specscope doctor`), as the adaptive
        # rule's priors: a target pass over r tokens in 1-token passes, and a model drafter's
        # token in target passes
        self.verify_curve: dict[int, float] | None = None
        self.draft_ratio: float | None = None
        self.remote = getattr(target, "remote", False)  # served (remote/target.py): score()
        # `--draft-len learned`: () -> the loaded H-RAD predictor (core/hrad.py), set by the
        # session where one was trained; `no_predictor`: the refusal's line where none was
        self.length_predictor: Callable[[], object] | None = None
        self.no_predictor = "no trained draft-length predictor: make one with `specscope hrad train`"
        self._prompt_hidden: torch.Tensor | None = None  # the prompt's last read hidden state

    @property
    def methods(self) -> list[str]:
        return list(self.factories)

    def drafter(self, method: str) -> Drafter:
        if method not in self.factories:
            raise SpecScopeError(f"unknown method '{method}' (choose from {', '.join(self.factories)})")
        if method not in self._drafters:
            self._drafters[method] = self.factories[method]()
        return self._drafters[method]

    def reset(self) -> None:
        """Forget everything a run leaves behind: KV caches, drafters' state, adaptive policies.
        Runs that must not depend on each other (bench runs, warm-ups) call this between them."""
        self.target.reset()
        for drafter in self._drafters.values():
            drafter.reset()
        self._policies.clear()

    def _verify(self, ids, draft, parents, q, shaping, generator):
        """One target pass over the last committed token + the draft (chain or tree).
        Returns the verdict, p of each draft token (for display), and the hidden states."""
        # Trees, and chains over a long context, go through the tree pass: its hybrid attention
        # reads the cached prefix without a mask (a masked multi-token pass over a long prefix
        # copies every key and value once per query head group: 1.7 target passes at 8k).
        tree = not is_chain(parents) or (bool(draft) and len(ids) > self.target.prefill_chunk)
        if self.remote:  # a served target scores the draft itself: rows it did not need are NaN
            hidden, tree = self.target.score(ids, draft, parents, shaping.greedy), False
        elif tree:
            hidden = self.target.forward_tree(ids, draft, parents)
        else:
            hidden = self.target.forward(ids + draft, len(draft) + 1)
        logits = self.target.logits(hidden)
        rows = torch.tensor([par + 1 for par in parents], dtype=torch.long, device=logits.device)
        cols = torch.tensor(draft, dtype=torch.long, device=logits.device)
        if shaping.greedy:
            verdict = greedy_verify_tree(draft, parents, logits.argmax(-1).tolist())
            # displayed p: the unshaped distribution, without a full softmax
            shown = (logits[rows, cols] - torch.logsumexp(logits[rows], -1)).exp()
        else:
            probs = probs_from_logits(logits, shaping)
            verdict = sample_verify_tree(draft, parents, probs, q, generator)
            shown = probs[rows, cols]
        if tree:
            self.target.keep_path(ids, draft, verdict.path)
        return verdict, tuple(shown.tolist()), hidden

    def _policy(self, controls: Controls) -> AdaptiveLength:
        key = (controls.method, controls.adaptive_rule, controls.overlap)
        if key not in self._policies and controls.adaptive_rule == "learned":
            self._policies[key] = self.learned_policy(controls)
        if key not in self._policies:
            self._policies[key] = AdaptiveLength(
                controls.draft_len or 4, controls.adaptive_rule, verify_curve=self.verify_curve,
                draft_ratio=self.draft_ratio if controls.method in NEEDS_DRAFTER else None,
                overlap=controls.overlap)
        return self._policies[key]

    def learned_policy(self, controls: Controls):
        """H-RAD's length rule (core/adaptive_learned.py), or a one-line refusal."""
        from specscope.core.adaptive_learned import LearnedLength

        if controls.method not in NEEDS_DRAFTER:
            raise SpecScopeError(f"--draft-len learned sizes a draft model's drafts "
                                 f"({', '.join(sorted(NEEDS_DRAFTER))}), not '{controls.method}'")
        if self.length_predictor is None:
            raise SpecScopeError(self.no_predictor)
        return LearnedLength(self.length_predictor(), controls.draft_len or 4,
                             verify_curve=self.verify_curve, draft_ratio=self.draft_ratio)

    def param_ratio(self, drafter: Drafter) -> float:
        return drafter.read_params() / self.target.read_params()

    def check_prompt(self, prompt_ids: list[int]) -> None:
        if not prompt_ids:
            raise SpecScopeError("the prompt is empty")
        if len(prompt_ids) >= self.target.max_positions:
            raise SpecScopeError(
                f"the prompt has {len(prompt_ids)} tokens; the target's context window is "
                f"{self.target.max_positions}")

    def _read_prompt(self, drafter: Drafter, ids: list[int]) -> Generator[Prefilling, None, float]:
        """The target reads ids a chunk a pass, handing each chunk's hidden states to a drafter
        that wants them; Prefilling between passes when there is more than one. Returns the
        seconds spent reading (not those the consumer held an event)."""
        total = len(ids)
        done = common_prefix(self.target.ids, ids)
        report = total - done > self.target.prefill_chunk
        if report:
            yield Prefilling("target", done, total)
        seconds, t = 0.0, time.perf_counter()
        self._prompt_hidden = None
        for start, hidden in self.target.prefill_chunks(ids):
            if len(hidden):  # what predicted the prompt's last token (a learned length reads it)
                self._prompt_hidden = hidden[-1]
            if drafter.needs_target_hidden:
                drafter.observe_target(start, hidden)
            seconds += time.perf_counter() - t
            if report:
                yield Prefilling("target", start + len(hidden), total)
            t = time.perf_counter()
        return seconds + time.perf_counter() - t

    @staticmethod
    def _read_context(drafter: Drafter, ids: list[int]) -> Generator[Prefilling, None, float]:
        """A drafter reads a long unread context before it drafts (Drafter.prefill), reported
        the same way. Returns its seconds (0 when there was nothing long to read)."""
        seconds, t, read = 0.0, time.perf_counter(), False
        for done, total in drafter.prefill(ids):
            seconds += time.perf_counter() - t
            yield Prefilling("draft", done, total)
            t, read = time.perf_counter(), True
        return seconds + time.perf_counter() - t if read else 0.0

    def run(self, prompt_ids: list[int], controls: Controls) -> Iterator[Event]:
        """Generate from prompt_ids, yielding events. Reads `controls` at every step boundary.

        Closing the generator early (a UI's stop) is safe; the caller folds the events it saw.
        """
        self.check_prompt(prompt_ids)
        controls.validate()
        drafter = self.drafter(controls.method)
        stats = Stats(self.param_ratio(drafter))
        t0 = time.perf_counter()
        prefill_s = yield from self._read_prompt(drafter, prompt_ids[:-1])  # all but the last token
        started = Started(len(prompt_ids), controls.method, prefill_s)
        stats.add(started)
        yield started

        ids = list(prompt_ids)
        text = IncrementalText(self.tokenizer, prompt_ids)
        seed = controls.seed
        generator = torch.Generator(device=self.target.device).manual_seed(seed)
        stop_reason = "max_new_tokens"
        step = 0
        run_policy = None
        while len(ids) - len(prompt_ids) < controls.max_new_tokens:
            controls.validate()
            if controls.seed != seed:
                seed = controls.seed
                generator = torch.Generator(device=self.target.device).manual_seed(seed)
            drafter = self.drafter(controls.method)
            shaping = controls.shaping
            room = controls.max_new_tokens - (len(ids) - len(prompt_ids))
            policy = self._policy(controls) if controls.adaptive else None
            if policy is not None and policy is not run_policy:  # first use in this run
                policy.start_run(self.param_ratio(drafter), started.prefill_s, room)
                run_policy = policy
                if getattr(policy, "wants_features", False):
                    policy.see(self._prompt_hidden if step == 0 else None, ids[-1])
            wanted = policy.next_length() if policy else controls.draft_len
            drafter.configure(DraftSettings(controls.vocab_top_k,
                                            policy.min_confidence if policy else 0.0,
                                            controls.refine_steps, controls.draft_window,
                                            controls.overlap, policy is not None))
            stats.param_ratio = self.param_ratio(drafter)
            k = min(wanted, room - 1, self.target.max_positions - len(ids) - 1)

            read_s = (yield from self._read_context(drafter, ids[:-1])) if k > 0 else 0.0
            t = time.perf_counter()
            proposal = drafter.propose(ids, k, shaping, generator) if k > 0 else Proposal()
            draft_s = read_s + time.perf_counter() - t
            drafted = Drafted(step, len(ids), controls.method, k, tuple(proposal.tokens),
                              tuple(text.token_text(x) for x in proposal.tokens),
                              tuple(proposal.q_token), tuple(proposal.parents), draft_s,
                              refinement=tuple(map(tuple, proposal.refinement)),
                              refinement_texts=tuple(tuple(map(text.token_text, block))
                                                     for block in proposal.refinement),
                              prefill_s=read_s, overlap=proposal.overlap)
            stats.add(drafted)
            yield drafted

            t = time.perf_counter()
            draft, parents = proposal.tokens, proposal.parents or chain(len(proposal.tokens))
            verdict, p_tokens, hidden = self._verify(ids, draft, parents, proposal.q, shaping, generator)
            verify_s = time.perf_counter() - t

            emitted = [draft[i] for i in verdict.path] + [verdict.token]
            emitted = emitted[:room]
            for i, x in enumerate(emitted):
                if x in self.eos_ids:
                    emitted = emitted[: i + 1]
                    stop_reason = "eos"
                    break
            pieces = [text.push(x) for x in emitted]
            if controls.stop and stop_reason != "eos":
                emitted, pieces, hit = _cut_at_stop(emitted, pieces, stats.text, controls.stop)
                if hit:
                    stop_reason = "stop_string"
            if drafter.needs_target_hidden:  # the root and the accepted nodes are committed now
                drafter.observe_target(len(ids) - 1, hidden[[0] + [i + 1 for i in verdict.path]])
            n_kept = min(verdict.accepted, len(emitted))  # accepted nodes that were emitted
            ids.extend(emitted)
            drafter.feedback(ids, proposal, n_kept)
            if policy:
                if getattr(policy, "wants_features", False):  # the state that predicted ids[-1]
                    policy.see(hidden[verdict.path[-1] + 1 if verdict.path else 0], ids[-1])
                d = depths(parents)
                policy.observe(k, max(d, default=-1) + 1, verdict.accepted, draft_s, verify_s,
                               nodes=len(draft), emitted=len(emitted),
                               reused=proposal.overlap.reused if proposal.overlap else 0)
            tried = children(parents)[verdict.path[-1] if verdict.path else -1]
            token_emitted = len(emitted) > verdict.accepted
            verified = Verified(
                step=step,
                p=p_tokens,
                accepted=tuple(i in verdict.path[:n_kept] for i in range(len(draft))),
                n_accepted=n_kept,
                # a refusal after the end of the answer is not shown as one
                first_rejected=tried[0] if tried and token_emitted else None,
                token=verdict.token,
                token_text=text.token_text(verdict.token),
                bonus=not tried,
                emitted=tuple(emitted),
                pieces=tuple(pieces),
                verify_s=verify_s,
                draft_s=draft_s,
                dropped=tuple(i in verdict.path[n_kept:] for i in range(len(draft))),
                token_emitted=token_emitted,
                kv_target_bytes=cache_bytes(self.target.cache),
                kv_draft_bytes=drafter.kv_bytes(),
                requests=getattr(self.target, "last_requests", 0) if self.remote else 0,
                server_s=getattr(self.target, "last_server_s", None) if self.remote else None,
            )
            stats.add(verified)
            yield verified
            step += 1
            if stop_reason in ("eos", "stop_string"):
                break
            if len(ids) >= self.target.max_positions:
                stop_reason = "context_window"
                break
        yield Finished(stats.summary(stop_reason, time.perf_counter() - t0))


def _cut_at_stop(emitted: list[int], pieces: list[str], before: str,
                 stops: list[str]) -> tuple[list[int], list[str], bool]:
    """Keep tokens up to the one that completes a stop string."""
    text = before
    for i, piece in enumerate(pieces):
        text += piece
        tail = text[-(max(map(len, stops)) + len(piece)):]
        if any(s in tail for s in stops):
            return emitted[: i + 1], pieces[: i + 1], True
    return emitted, pieces, False
