"""`specscope generate`: stream coloured tokens to the terminal, or JSON lines."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.text import Text

from specscope.core.events import Drafted, Finished, Started, Verified, event_to_dict
from specscope.core.stats import Stats, byte_size
from specscope.core.timeline import TimelineBuilder
from specscope.core.tree import children
from specscope.auto import choice_json
from specscope.drafting import drafting_label, with_drafting
from specscope.frontends.loading import open_session, resolve_auto
from specscope.frontends.marks import step_marks
from specscope.frontends.prefill import PrefillDisplay
from specscope.profiles import load_profile, quant_label, with_backend, with_quant
from specscope.session import make_controls

STYLES = {"accepted": "green", "rejected": "red strike dim", "dropped": "grey50 italic",
          "target": "bold cyan", "plain": ""}
# Without colour (NO_COLOR, or stdout not a terminal) the drafts that are not part of the answer
# are bracketed instead, so the answer still reads as itself: [-refused-] and [=past the end=].
MARKS = {"rejected": ("[-", "-]"), "dropped": ("[=", "=]")}
SYMBOLS = {"\n": "⏎", "\t": "→"}


def uncoloured(console: Console) -> bool:
    return console.no_color or console.color_system is None


def legend(plain: bool = False) -> Text:
    t = Text("legend: ")
    if plain:
        t.append("[-rejected draft-]  [=draft past the end of the answer=]  (⏎: a newline in "
                 "them); accepted drafts and the target's tokens are the answer's plain text")
        return t
    t.append("accepted draft", STYLES["accepted"]).append("  ")
    t.append("rejected draft", STYLES["rejected"]).append("  ")
    t.append("past the end", STYLES["dropped"]).append("  ")
    t.append("target's token", STYLES["target"])
    return t


def printable(s: str) -> str:
    """Keep layout characters, show other control characters as escapes."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in s)


def inline(s: str) -> str:
    """Text that is not part of the answer (a refused draft), kept on one line: its newlines
    and tabs as symbols, so it never breaks the answer's own lines."""
    return "".join(SYMBOLS.get(c, c) for c in printable(s))


def rejected_branch(parents, first: int) -> list[int]:
    """The rejected node and its first-child descendants: the guess the target refused."""
    kids = children(parents)
    branch = [first]
    while kids.get(branch[-1]):
        branch.append(kids[branch[-1]][0])
    return branch


def dropped_nodes(verified: Verified) -> list[int]:
    """Draft nodes the target accepted that the step did not emit: they come after the answer's
    end (end of turn, a stop string, the token limit), so they are not part of the answer."""
    return [i for i, cut in enumerate(step_marks(verified)[1]) if cut]


def render_step(drafted: Drafted | None, verified: Verified, hide_rejected: bool,
                plain: bool = False) -> Text:
    """The text one step adds: accepted drafts, drafts past the end and rejected drafts (on one
    line each, bracketed when `plain`), then the target's token."""
    out = Text()
    n = verified.n_accepted

    def aside(kind: str, text: str) -> None:
        left, right = MARKS[kind] if plain else ("", "")
        out.append(left + inline(text) + right, STYLES[kind])

    for piece in verified.pieces[:n]:
        out.append(printable(piece), STYLES["accepted"])
    if not hide_rejected and drafted is not None:
        if dropped := dropped_nodes(verified):
            aside("dropped", "".join(drafted.texts[i] for i in dropped))
        if verified.first_rejected is not None:
            branch = rejected_branch(drafted.parents, verified.first_rejected)
            aside("rejected", "".join(drafted.texts[i] for i in branch))
    had_draft = drafted is not None and len(drafted.tokens) > 0
    for piece in verified.pieces[n:]:
        out.append(printable(piece), STYLES["target"] if had_draft else STYLES["plain"])
    return out


def stats_line(s, quant: str = "") -> str:
    return (f"{s.new_tokens} tokens in {s.wall_s:.2f}s ({s.tokens_per_s:.2f} tok/s) | steps {s.steps} "
            f"| tau {s.tau:.2f} | acceptance {s.acceptance_rate:.0%} ({s.accepted}/{s.drafted}) "
            f"| draft {s.draft_s:.2f}s verify {s.verify_s:.2f}s prefill {s.prefill_s:.2f}s "
            f"| MBSU {s.mbsu:.2f} | KV target {byte_size(s.kv_target_bytes)} drafter "
            f"{byte_size(s.kv_draft_bytes)} | stop: {s.stop_reason}"
            + (f" | {quant}" if quant else "") + remote_costs(s) + overlap_costs(s))


def overlap_costs(s) -> str:
    """Drafting ahead (--overlap): what was drafted ahead and kept, the hedges, who idled."""
    if not s.overlapped:
        return ""
    return (f" | overlap: drafted ahead {s.predrafted}, reused {s.reused}, discarded {s.discarded}"
            f"; main hits {s.main_hits}, hedge hits {s.hedge_hits} misses {s.hedge_misses} "
            f"({s.hedges} hedges); idle: target {s.target_idle_s:.2f}s drafter {s.draft_idle_s:.2f}s")


def remote_costs(s) -> str:
    """A served target's verification cost, for the stats line ("" for a local target)."""
    return f" | remote: {remote_cost_text(s)}" if s.requests else ""


def remote_cost_text(s) -> str:
    """Requests, the server's compute, the round trips (generate's stats line, the TUI)."""
    server = "" if s.server_s is None else (
        f", server {s.server_s:.2f}s + round trips {s.verify_s - s.server_s:.2f}s "
        f"({1000 * (s.verify_s - s.server_s) / s.requests:.1f} ms a request)")
    return f"{s.requests} requests{server}"


def as_json(event, profile, choice=None) -> dict:
    """An event as a dict; the summary also says what ran (dtype and quantization) and, where
    the profile left them to the machine, what auto chose and why."""
    d = event_to_dict(event)
    if isinstance(event, Finished):
        d.update(backend=profile.backend, dtype=profile.dtype, quant=profile.quant,
                 draft_quant=profile.draft_quant,
                 auto=choice_json(choice))
    return d


def run_generate(*, prompt: str, profile, method, draft_len, max_new_tokens, temperature, top_p,
                 top_k, seed, dtype, device, trimmed, vocab_top_k, stop, json_out, hide_rejected,
                 raw, adaptive=None, adaptive_rule=None, refine_steps=None, draft_quant=None,
                 quant=None, draft_window=None, backend=None, drafting=None) -> None:
    err = Console(stderr=True)
    if not prompt.strip():
        from specscope.core.errors import SpecScopeError

        raise SpecScopeError("the prompt is empty")
    prof = with_drafting(with_backend(with_quant(load_profile(profile), quant, draft_quant), backend),
                         **(drafting or {}))
    prof, choice = resolve_auto(prof, dtype, method, device, err, say=not json_out)
    dtype = method = None  # applied to the profile
    if raw:
        prof.chat_template = False
    controls = make_controls(prof, method=method, draft_len=draft_len, adaptive=adaptive,
                             adaptive_rule=adaptive_rule, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                             vocab_top_k=vocab_top_k, stop=stop or None, refine_steps=refine_steps,
                             draft_window=draft_window)
    session = open_session(prof, method, dtype, device, trimmed, vocab_top_k, err,
                           max_new_tokens=controls.max_new_tokens)
    try:
        ids = session.encode(prompt)
        session.check(controls, ids)
        out = Console(highlight=False, soft_wrap=True)
        plain = uncoloured(out)
        if not json_out:
            err.print(legend(plain))
        label = ", ".join(x for x in (quant_label(session.profile), drafting_label(session.profile)) if x)
        stats = Stats(session.decoder.param_ratio(session.decoder.drafter(controls.method)))
        events = session.decoder.run(ids, controls)
        drafted = None
        summary = None
        prefill = PrefillDisplay(err)  # a long prompt's prefill, on stderr
        timeline = TimelineBuilder() if json_out and session.worker is not None else None
        try:
            for event in events:
                prefill.show(event)
                stats.add(event)
                if timeline is not None:  # a step's timeline once the next step says what it drafted ahead
                    done = timeline.finish() if isinstance(event, Finished) else timeline.add(event)
                    for t in done:
                        print(json.dumps(t.as_dict()), flush=True)
                if json_out:
                    print(json.dumps(as_json(event, session.profile, choice)), flush=True)
                if isinstance(event, Drafted):
                    drafted = event
                elif isinstance(event, Verified) and not json_out:
                    out.print(render_step(drafted, event, hide_rejected, plain), end="")
                elif isinstance(event, Finished):
                    summary = event.summary
        except KeyboardInterrupt:
            prefill.close()
            events.close()
            summary = stats.summary("interrupted")
            if json_out:
                print(json.dumps(as_json(Finished(summary), session.profile, choice)), flush=True)
            else:
                out.print()
                err.print(stats_line(summary, label))
            raise SystemExit(130)
        if not json_out:
            out.print()
            err.print(stats_line(summary, label))
    finally:
        session.close()  # the drafter's worker, if any
