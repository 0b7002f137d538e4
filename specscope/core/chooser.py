"""Choose dtype, drafter weights, method and draft length from measured costs (a pure function).

Inputs are the pass costs `machine.py` measured on this machine (seconds of a target pass over
1..16 tokens, of a drafted token, prompt reading rates, per dtype and weight format) and what a
method is expected to accept; the output is the combination with the most predicted tokens per
second over a typical request (a prompt of `prompt_tokens`, an answer of `new_tokens`), with the
sentence that says why. No measurement happens here, so tests give fixed tables and check the
choice.

The cost model is the one `--draft-len auto` uses while generating (core/adaptive.py): a chain
of k drafted tokens, each accepted with probability a given the ones before, yields
E(k) = 1 + a + ... + a^k tokens per step and costs k t_draft + t_verify(k+1) seconds; plain
decoding costs t_target(1) a token. Reading the prompt costs P / prefill rate for the target
and, when a model drafts, for the drafter as well.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Per-position acceptance a method is assumed to reach before anything is measured on this pair
# (the adaptive rule replaces it with what it observes, step by step). A model drafter of the
# same family, greedy: a = 0.7 gives E(4) = 2.77 tokens per step, about what the embedded pair
# measured (docs/measurements). The FastMTP head's own held-apart acceptance is used when known.
PRIOR_ACCEPTANCE = {"draft": 0.7}
MIN_GAIN = 1.05  # speculation must promise this much over plain decoding, or plain is chosen
MAX_K = 12


@dataclass(frozen=True)
class Costs:
    """One format's measured costs: seconds of a pass over r tokens, prompt tokens per second."""

    passes: dict[int, float]
    prefill_tps: float

    def t(self, rows: int) -> float:
        return interpolate(self.passes, rows)

    def curve(self) -> dict[int, float]:
        """A pass over r tokens in passes of one token: what decides whether verification pays."""
        return {r: t / self.t(1) for r, t in self.passes.items()}


def interpolate(points: dict[int, float], x: int) -> float:
    """points[x], linear between measured sizes; past the largest, proportional to x."""
    sizes = sorted(points)
    if x <= sizes[0]:
        return points[sizes[0]]
    for a, b in zip(sizes, sizes[1:]):
        if x <= b:
            w = (x - a) / (b - a)
            return (1 - w) * points[a] + w * points[b]
    return points[sizes[-1]] * x / sizes[-1]


@dataclass(frozen=True)
class Option:
    dtype: str
    draft_quant: str
    method: str
    k: int
    tokens_per_s: float  # predicted, prompt reading included
    decode_tokens_per_s: float  # predicted, the answer alone
    plain_tokens_per_s: float  # plain decoding in the same dtype, prompt included
    measured: bool = False  # from a benchmark on this machine, not predicted

    @property
    def speedup(self) -> float:
        return self.tokens_per_s / self.plain_tokens_per_s


@dataclass
class Choice:
    dtype: str
    draft_quant: str
    method: str
    draft_len: int
    predicted: Option
    reason: str
    ranked: list[Option] = field(default_factory=list)  # every option considered, best first


def expected_tokens(acceptance: list[float] | float, k: int) -> float:
    """Tokens a step yields with k drafted: 1 + sum over i <= k of P(first i accepted)."""
    total, survive = 1.0, 1.0
    for i in range(k):
        a = acceptance if isinstance(acceptance, float) else acceptance[min(i, len(acceptance) - 1)]
        survive *= a
        total += survive
    return total


def _plain(target: Costs, prompt: int, new: int) -> tuple[float, float]:
    decode = new * target.t(1)
    return new / (prompt / target.prefill_tps + decode), 1.0 / target.t(1)


def _chain(target: Costs, draft_token_s: float, draft_prefill_s: float, acceptance, prompt: int,
           new: int) -> tuple[int, float, float]:
    """The best chain length, its tokens/s with the prompt read, and decode-only tokens/s."""
    best = (0, 0.0, 0.0)
    for k in range(1, MAX_K + 1):
        per_token = (k * draft_token_s + target.t(k + 1)) / expected_tokens(acceptance, k)
        total = prompt / target.prefill_tps + draft_prefill_s + new * per_token
        if new / total > best[1]:
            best = (k, new / total, 1.0 / per_token)
    return best


def choose(target: dict[tuple[str, str], Costs], drafter: dict[tuple[str, str], Costs] | None,
           quant: str = "none", dtypes: list[str] | None = None,
           draft_quants: list[str] | None = None, methods: list[str] | None = None,
           acceptance: dict[str, list[float] | float] | None = None, mtp_token_ratio: float = 0.1,
           prompt_tokens: int = 256, new_tokens: int = 128,
           measured: dict[tuple[str, str], float] | None = None,
           logits_only: tuple[str, ...] = ()) -> Choice:
    """The fastest predicted combination. `target`/`drafter`: costs per (dtype, weight format);
    `quant`: the target's format (a profile choice: it changes the output, auto never does);
    `dtypes`, `draft_quants`, `methods`: what may be chosen (None: everything measured);
    `acceptance`: per method, per-position acceptance (default PRIOR_ACCEPTANCE; a FastMTP head
    passes its held-apart numbers, and `mtp_token_ratio` is its drafted token over a target pass);
    `measured`: (dtype, method) -> the speedup over plain decoding a benchmark measured on this
    machine (the last `bench`): it replaces the prediction for that method in that dtype (a
    method with no prediction, such as mtp-tree, is considered only when measured);
    `logits_only`: the "dtypes" of a backend that returns logits only (GGUF on llama.cpp, whose
    formats come in as dtype "gguf"): no FastMTP head there."""
    acceptance = {**PRIOR_ACCEPTANCE, **(acceptance or {})}
    methods = methods or ["ar", "draft"]
    options: list[Option] = []
    for (dtype, q), tc in target.items():
        if q != quant or (dtypes and dtype not in dtypes):
            continue
        plain, plain_decode = _plain(tc, prompt_tokens, new_tokens)
        if "ar" in methods:
            options.append(Option(dtype, "none", "ar", 0, plain, plain_decode, plain))
        if "draft" in methods and drafter:
            for (ddtype, dq), dc in drafter.items():
                if ddtype != dtype or (draft_quants and dq not in draft_quants):
                    continue
                k, rate, decode = _chain(tc, dc.t(1), prompt_tokens / dc.prefill_tps,
                                         acceptance["draft"], prompt_tokens, new_tokens)
                options.append(Option(dtype, dq, "draft", k, rate, decode, plain))
        for m in ("mtp", "mtp-tree"):
            if m in methods and m in acceptance and dtype not in logits_only:
                k, rate, decode = _chain(tc, mtp_token_ratio * tc.t(1), 0.0, acceptance[m],
                                         prompt_tokens, new_tokens)
                options.append(Option(dtype, "none", m, k, rate, decode, plain))
        for (mdtype, m), speedup in (measured or {}).items():  # a benchmark's numbers win
            method, _, dq = m.partition(":")  # "draft:int8": the drafter's weights it ran
            if mdtype != dtype or method not in methods or method == "ar" \
                    or (dtype in logits_only and method in ("mtp", "mtp-tree")):
                continue
            same = [o for o in options if (o.dtype, o.method) == (dtype, method)
                    and (method != "draft" or o.draft_quant == dq)]
            if method == "draft" and not same:
                continue  # a drafter format not among those open here
            options = [o for o in options if o not in same]
            options.append(Option(dtype, dq or "none", method, same[0].k if same else 0,
                                  plain * speedup, plain_decode * speedup, plain, measured=True))
    if not options:
        raise ValueError("nothing measured to choose from")
    options.sort(key=lambda o: -o.tokens_per_s)
    best = options[0]
    if best.method != "ar" and best.speedup < MIN_GAIN:
        # speculation promises too little to be worth its drafter's memory and loading: plain,
        # in the dtype where plain decoding is fastest
        best = max((o for o in options if o.method == "ar"), key=lambda o: o.tokens_per_s, default=best)
    return Choice(best.dtype, best.draft_quant, best.method, best.k, best, _reason(best, target, drafter,
                                                                                   quant), options)


def _reason(best: Option, target, drafter, quant: str) -> str:
    """One sentence: what was chosen and the measured fact that decided it."""
    tc = target[(best.dtype, quant)]
    said = [f"{_name(best.dtype)}" + (f", drafter {best.draft_quant}" if best.method == "draft" else "")
            + f", {best.method}" + (f" (k about {best.k})" if best.k else "")
            + (f": measured {best.speedup:.2f}x plain by the last bench here" if best.measured else
               f": predicted {best.tokens_per_s:.1f} tok/s, {best.speedup:.2f}x plain")]
    others = [d for (d, q) in target if q == quant and d != best.dtype]
    for d in others:
        oc = target[(d, quant)]
        verify = oc.t(5) / oc.t(1)
        mine = tc.t(5) / tc.t(1)
        if oc.t(1) < tc.t(1) and verify > mine * 1.25:
            said.append(f"{_name(d)} decodes faster ({1 / oc.t(1):.1f} against {1 / tc.t(1):.1f} tok/s) but its "
                        f"verification is compute-bound here (5 tokens cost {verify:.1f} passes of one "
                        f"against {mine:.1f})")
        elif oc.t(1) > tc.t(1) * 1.1:
            said.append(f"{_name(d)} passes are {oc.t(1) / tc.t(1):.1f}x slower here")
    if drafter and best.method == "draft":
        for (d, q), dc in drafter.items():
            if d == best.dtype and q != best.draft_quant and dc.t(1) > drafter[(d, best.draft_quant)].t(1):
                said.append(f"{_weights(q)} drafted token costs {dc.t(1) / tc.t(1):.2f} target passes "
                            f"here against {drafter[(d, best.draft_quant)].t(1) / tc.t(1):.2f}")
    if best.method == "ar":
        said.append("no drafter pays on this machine: its token or the verification costs too much")
    return "; ".join(said)


def _name(dtype: str) -> str:
    """How a reason names a format: its dtype, or the backend for GGUF on llama.cpp."""
    return "llama.cpp" if dtype == "gguf" else dtype


def _weights(quant: str) -> str:
    return "an unquantized" if quant == "none" else f"an {quant}"
