"""What a long context costs the drafter and the tree verifier (LongSpec's two measurements).

    python -m specscope.bench.context_cost draft  [--lengths 1024,2048,4096,8192] [--windows 0,1024]
    python -m specscope.bench.context_cost verify [--context 8192] [--nodes 16]
    python -m specscope.bench.context_cost accept [--context 4096] [--windows 0,64,256,1024]
                                               [--positions original,contiguous]

`draft`: per drafted token, the draft model's time (weights unquantized, in the dtype) and its
KV cache's bytes at each context length, for each draft window (0: unbounded). The context is
real text: Python standard library sources (found offline on any machine with Python),
tokenized and cut to each length.
The cache is grown from one length to the next, so the unbounded prefill is paid once.

`verify`: one tree verification pass (the root + a fixed tree of --nodes nodes) over a context
of --context tokens on the target, with the dense (n+1) x (context+n+1) mask and with hybrid
attention (hybrid_attention.py), alternated, median of --repeats.

`accept`: greedy `draft` runs continuing one long text (raw, no chat template) with each draft
window and each way of numbering the kept tokens (window.py: original or contiguous):
acceptance, tau, draft ms per token and the drafter's KV bytes. The target's cache is kept
between the runs (same prompt), so its prefill is paid once. Runs as the profile says (its
drafter quantization included).

Models come from a profile (default qwen2.5-coder: the embedded pair), in its dtype unless
--dtype. Prints one table; nothing is written. Minutes on a CPU: the target's 8k prefill alone
takes about a minute.
"""
from __future__ import annotations

import argparse
import inspect
import statistics
import time

import torch

MODULES = ("inspect", "typing", "argparse", "dataclasses", "pathlib", "functools", "enum", "ast")


def stdlib_ids(tokenizer, n: int) -> list[int]:
    """At least n token ids of standard-library source text (the same on every run)."""
    import importlib

    ids: list[int] = []
    for name in MODULES:
        ids += tokenizer(inspect.getsource(importlib.import_module(name)))["input_ids"]
        if len(ids) >= n:
            return ids[:n]
    raise SystemExit(f"the standard library sources give only {len(ids)} tokens, not {n}")


def load(source: str, dtype: str):
    from specscope.core.models import load_causal_lm, load_tokenizer

    return load_causal_lm(source, dtype), load_tokenizer(source, dtype=dtype)


def grow(lm, ids: list[int], chunk: int = 1024) -> float:
    """Make lm's cache cover ids (all but nothing left to feed), in chunks; seconds taken."""
    from specscope.core.lm import common_prefix

    t = time.perf_counter()
    start = common_prefix(lm.ids, ids)
    for end in range(start + chunk, len(ids) + chunk, chunk):
        lm.forward(ids[:min(end, len(ids))], 0)
    return time.perf_counter() - t


def measure_draft(args) -> None:
    from specscope.core.drafters.base import DraftSettings
    from specscope.core.drafters.model import ModelDrafter
    from specscope.core.sampling import Shaping
    from specscope.core.window import WindowedLM
    from specscope.profiles import load_profile

    profile = load_profile(args.profile)
    model, tok = load(profile.drafter, args.dtype or profile.dtype)
    lengths = [int(x) for x in args.lengths.split(",")]
    text = stdlib_ids(tok, max(lengths) + args.tokens + 8)
    print(f"drafter {profile.drafter} ({args.dtype or profile.dtype}), {torch.get_num_threads()} "
          f"threads; {args.tokens} drafted tokens per point, k={args.k}, greedy")
    print(f"{'window':>8} {'context':>8} {'ms/token':>9} {'KV MiB':>8} {'entries':>8} {'feed s':>7}")
    for window in [int(x) for x in args.windows.split(",")]:
        lm = WindowedLM(model, window=window, positions=args.positions)
        drafter = ModelDrafter(lm, lm.vocab_size)
        drafter.configure(DraftSettings(draft_window=window))
        drafter.propose(text[:64], args.k, Shaping(0.0), None)  # warm-up
        for n in lengths:
            ctx = text[:n]
            t = time.perf_counter()
            grow(lm, ctx[:-1]) if window == 0 else lm.forward(ctx[:-1], 0)  # bounded: one go
            feed_s = time.perf_counter() - t
            ids, drafted, spent = list(ctx), 0, 0.0
            while drafted < args.tokens:
                t = time.perf_counter()
                proposal = drafter.propose(ids, args.k, Shaping(0.0), None)
                spent += time.perf_counter() - t
                drafted += len(proposal.tokens)
                ids += text[len(ids):len(ids) + len(proposal.tokens)]  # the text goes on
            print(f"{window or 'all':>8} {n:>8} {spent / drafted * 1000:>9.1f} "
                  f"{lm.kv_bytes() / 2**20:>8.1f} {lm.cache.get_seq_length():>8} {feed_s:>7.1f}",
                  flush=True)


def measure_verify(args) -> None:
    from specscope.core.lm import CachedLM
    from specscope.profiles import load_profile

    profile = load_profile(args.profile)
    model, tok = load(profile.target, args.dtype or profile.dtype)
    lm = CachedLM(model, check=False)
    ids = stdlib_ids(tok, args.context + args.nodes + 1)
    ctx, tokens = ids[:args.context], ids[args.context:args.context + args.nodes]
    half = args.nodes // 2  # a chain of half the nodes, and a sibling for each of them
    parents = list(range(-1, half - 1)) + [max(-1, i - half - 1) for i in range(half, args.nodes)]
    prefill = grow(lm, ctx[:-1])
    print(f"target {profile.target} ({args.dtype or profile.dtype}), {torch.get_num_threads()} "
          f"threads; context {len(ctx)} (prefill {prefill:.0f} s), tree of {args.nodes} nodes")
    times: dict[str, list[float]] = {"dense": [], "hybrid": []}
    for r in range(args.repeats + 1):
        for name in times:
            t = time.perf_counter()
            lm.forward_tree(ctx, tokens, parents, dense=name == "dense")
            if r:  # the first round warms up
                times[name].append(time.perf_counter() - t)
            lm.keep_path(ctx, tokens, ())
    for name, ts in times.items():
        print(f"{name:>7}: median {statistics.median(ts) * 1000:.0f} ms  "
              f"(all: {', '.join(f'{x * 1000:.0f}' for x in ts)})")


def measure_accept(args) -> None:
    from dataclasses import replace

    from specscope.core.events import Finished
    from specscope.profiles import load_profile, quant_label
    from specscope.session import load_session

    profile = replace(load_profile(args.profile), chat_template=False)
    session = load_session(profile, args.dtype)
    prompt = stdlib_ids(session.tokenizer, args.context)
    t = time.perf_counter()
    grow(session.target, prompt[:-1])
    print(f"target {profile.target}, drafter {profile.drafter} ({session.profile.dtype}; "
          f"{quant_label(session.profile) or 'no quantization'}), "
          f"{torch.get_num_threads()} threads; context {len(prompt)} (prefill "
          f"{time.perf_counter() - t:.0f} s), greedy draft k={args.k}, {args.new} new tokens")
    print(f"{'pos':>5} {'window':>6} {'accept':>7} {'tau':>5} {'draft ms/tok':>13} {'KV MiB':>7} "
          f"{'tok/s':>6}")
    runs = [(w, mode) for mode in args.positions.split(",") for w in map(int, args.windows.split(","))
            if w or mode == "original"]  # unbounded: one run
    for window, mode in runs:
        session.drafter_lm.set_positions(mode)
        session.decoder.drafter("draft").reset()
        controls = session.controls(method="draft", draft_len=args.k, adaptive=False,
                                    temperature=0.0, max_new_tokens=args.new, draft_window=window)
        s = next(e for e in session.decoder.run(prompt, controls) if isinstance(e, Finished)).summary
        print(f"{mode[:4]:>5} {window or 'all':>6} {s.acceptance_rate:>7.0%} {s.tau:>5.2f} "
              f"{s.draft_s / max(s.drafted, 1) * 1000:>13.0f} {s.kv_draft_bytes / 2**20:>7.1f} "
              f"{s.tokens_per_s:>6.2f}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m specscope.bench.context_cost",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("draft", help="draft-token cost and drafter KV bytes against context length")
    d.add_argument("--lengths", default="1024,2048,4096,8192")
    d.add_argument("--windows", default="0,1024", help="draft windows (0: unbounded)")
    d.add_argument("--tokens", type=int, default=32, help="drafted tokens per point")
    d.add_argument("-k", type=int, default=4, help="draft length")
    v = sub.add_parser("verify", help="a tree pass over a long context: dense mask or hybrid")
    v.add_argument("--context", type=int, default=8192)
    v.add_argument("--nodes", type=int, default=16)
    v.add_argument("--repeats", type=int, default=5)
    a = sub.add_parser("accept", help="acceptance and draft cost against the draft window")
    a.add_argument("--context", type=int, default=4096)
    a.add_argument("--windows", default="0,64,256,1024", help="draft windows (0: unbounded)")
    a.add_argument("--new", type=int, default=48, help="new tokens per run")
    a.add_argument("-k", type=int, default=4, help="draft length")
    a.add_argument("--positions", default="original,contiguous",
                   help="kept tokens' positions: original, contiguous, or both")
    d.add_argument("--positions", default="original", choices=("original", "contiguous"))
    for q in (d, v, a):
        q.add_argument("--profile", default=None)
        q.add_argument("--dtype", default=None)
        q.add_argument("--threads", type=int, default=None,
                       help="torch threads (1 is steadier on a machine busy with other work)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with torch.inference_mode():
        {"draft": measure_draft, "verify": measure_verify, "accept": measure_accept}[args.what](args)


if __name__ == "__main__":
    main()
