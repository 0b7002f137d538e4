"""Measure specscope against a served llama.cpp target (issue 33's note), as a script:

    python -m specscope.bench.remote_check --profile qwen2.5-coder --categories coding,qa,math_reasoning \
        --limit 2 -n 32 -k 4

Starts llama-server on the profile's target GGUF, then per prompt (report split): the server's
own greedy completion; specscope's `draft -k K` through the server (identical? acceptance, tau,
requests, the server's compute, round trip per request); the same drafter against the local
torch target (acceptance, tau). Prints one JSON line per prompt and a summary line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace


def main(argv=None) -> None:
    import torch

    from specscope.bench.engine_ref import gguf_pair
    from specscope.profiles import load_profile, with_remote
    from specscope.prompts import load_prompts
    from specscope.remote.http import HttpClient
    from specscope.remote.llama_server import LlamaServer
    from specscope.session import load_session

    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="qwen2.5-coder")
    ap.add_argument("--categories", default="coding,qa,math_reasoning")
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args(argv)
    local = replace(load_profile(a.profile), dtype=a.dtype, draft_quant="none", method="draft",
                    draft_len=a.k, max_new_tokens=a.n)
    threads = str(torch.get_num_threads())
    target_gguf, _ = gguf_pair(local, "/tmp")
    prompts = load_prompts(None, a.categories, a.limit, split="report")
    t0 = time.perf_counter()
    with LlamaServer(target_gguf, args=["-t", threads, "-tb", threads, "-c", "4096", "-np", "1",
                                        "--no-webui"]) as server:
        print(f"llama-server up in {server.started_s:.1f}s: {' '.join(server.command(server.port)[1:])}",
              file=sys.stderr, flush=True)
        remote = load_session(with_remote(replace(local, tokenizer=local.target), server.url))
        client = HttpClient(server.url, timeout=600)
        rows = []
        for p in prompts:
            ids = remote.encode(p.text)
            t = time.perf_counter()
            ref = client.post("/completion", {"prompt": ids, "n_predict": a.n, "temperature": 0.0,
                                              "cache_prompt": False, "return_tokens": True})
            ref_s = time.perf_counter() - t
            remote.decoder.reset()
            controls = remote.controls(method="draft", draft_len=a.k, max_new_tokens=a.n)
            s = list(remote.decoder.run(ids, controls))[-1].summary
            n = len(s.token_ids)
            rows.append({
                "prompt": p.id, "category": p.category, "prompt_tokens": len(ids),
                "identical": list(s.token_ids) == ref["tokens"][:n], "new_tokens": n,
                "server_plain_tok_s": ref["timings"]["predicted_per_second"], "server_plain_wall_s": ref_s,
                "remote_accept": s.acceptance_rate, "remote_tau": s.tau, "remote_wall_s": s.wall_s,
                "remote_tok_s": s.tokens_per_s, "requests": s.requests, "verify_s": s.verify_s,
                "server_s": s.server_s, "draft_s": s.draft_s,
                "steps": s.steps, "round_trip_ms": 1000 * (s.verify_s - s.server_s) / s.requests,
                "round_trip_ms_per_step": 1000 * (s.verify_s - s.server_s) / s.steps,
                "server_ms_per_request": 1000 * s.server_s / s.requests,
                "remote_tokens": list(s.token_ids)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "remote_tokens"}), flush=True)
        remote.decoder.drafter("draft").reset()
    print(f"server stopped; remote part {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    session = load_session(local)  # the same drafter against the local torch target
    for p, row in zip(prompts, rows):
        ids = session.encode(p.text)
        session.decoder.reset()
        s = list(session.decoder.run(ids, session.controls(method="draft", draft_len=a.k,
                                                             max_new_tokens=a.n)))[-1].summary
        row.update(local_accept=s.acceptance_rate, local_tau=s.tau, local_tok_s=s.tokens_per_s,
                   same_tokens_as_remote=list(s.token_ids) == row.pop("remote_tokens"))
        print(json.dumps({"prompt": p.id, "local_accept": s.acceptance_rate, "local_tau": s.tau,
                          "local_tok_s": s.tokens_per_s,
                          "same_tokens_as_remote": row["same_tokens_as_remote"]}), flush=True)

    def spread(key):  # mean over the prompts, and the lowest and highest prompt's
        vals = [r[key] for r in rows if r.get(key) is not None]
        return [round(sum(vals) / len(vals), 4), round(min(vals), 4), round(max(vals), 4)] if vals else None

    print(json.dumps({"summary": True, "prompts": len(rows), "mean_min_max": True,
                      "identical": sum(r["identical"] for r in rows),
                      "same_tokens_as_local": sum(bool(r.get("same_tokens_as_remote")) for r in rows),
                      "same_accept_as_local": sum(r["remote_accept"] == r.get("local_accept") for r in rows),
                      **{k: spread(k) for k in ("remote_accept", "local_accept", "remote_tau", "local_tau",
                                                "round_trip_ms", "round_trip_ms_per_step",
                                                "server_ms_per_request", "remote_tok_s", "local_tok_s",
                                                "server_plain_tok_s")}}), flush=True)


if __name__ == "__main__":
    main()
