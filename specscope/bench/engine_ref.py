"""Serving engines' own decoding as bench rows: `--reference llama.cpp` and `--reference URL`.

`llama.cpp` starts llama-server (remote/llama_server.py) on the profile's own GGUF files (the
embedded pair's shipped files, or the tiny-random pair written as GGUF) with the same threads:
  llama.cpp-plain          the target alone: llama.cpp's plain decoding
  llama.cpp-draft k=K      the target with the drafter (`-md`, `--spec-type draft-simple`,
                           `--spec-draft-n-max K --spec-draft-p-min 0`: K tokens a step, like
                           specscope's `draft -k K`); k=auto: llama.cpp's own defaults
`URL` measures a running server as it is configured (its own speculative decoding, if any):
  server
a llama.cpp server as below; vLLM and SGLang as engine_served.py says.
Each run is one `POST /completion` of the prompt's token ids (so the chat template is
specscope's, identical for every row), greedy, the same token budget, the server's prompt cache
off (each run reads its prompt, as specscope's rows do). Read: `tokens`, `stop_type`,
`timings.{prompt_ms, predicted_n, predicted_ms, draft_n, draft_n_accepted}`. Steps are
`predicted_n - draft_n_accepted` (a step emits its accepted tokens and one of the target's);
per-position acceptance is not reported by the server.
"""
from __future__ import annotations

import time

from specscope.bench.grid import Config
from specscope.bench.measured import Measured
from specscope.core.errors import SpecScopeError

LLAMACPP = "llama.cpp"
PLAIN = "llama.cpp-plain"
DRAFT = "llama.cpp-draft"
SERVER = "server"
ENGINE_KINDS = (LLAMACPP, SERVER)


def reference_grid(reference: str, draft_lens: list, default_len: int, has_drafter: bool) -> list[Config]:
    if reference != LLAMACPP:
        return [Config(SERVER, None, None, SERVER)]
    lens = [k for k in draft_lens if (isinstance(k, int) and k > 0) or k == "auto"] or [default_len]
    configs = [Config(PLAIN, None, None, LLAMACPP)]
    if has_drafter:
        configs += [Config(DRAFT, "auto" if isinstance(k, str) else k, None, LLAMACPP) for k in lens]
    return list(dict.fromkeys(configs))


def gguf_pair(profile, workdir) -> tuple[str, str | None]:
    """The GGUF files of the profile's target and drafter: the embedded pair's shipped files, or
    the tiny-random pair written once into workdir."""
    from pathlib import Path

    def one(source: str | None) -> str | None:
        if source is None:
            return None
        if source.startswith("embedded:"):
            from specscope.core.embedded import ensure_gguf

            return str(ensure_gguf(source.split(":", 1)[1]))
        if source.startswith("tiny-random:"):
            from specscope.core.gguf_write import write_tiny_gguf

            role = source.split(":", 1)[1]
            path = Path(workdir) / f"tiny-{role}.gguf"
            return str(path if path.is_file() else write_tiny_gguf(path, role))
        if source.endswith(".gguf") and Path(source).is_file():
            return source
        raise SpecScopeError(f"--reference llama.cpp needs GGUF files: '{source}' is not the embedded "
                             "pair, tiny-random or a .gguf file")
    return one(profile.target), one(profile.drafter)


class EngineReference:
    """The servers behind the reference rows: started on first use, stopped by close()."""

    def __init__(self, profile, reference: str, threads: int, n_ctx: int = 8192) -> None:
        import tempfile

        self.profile, self.reference = profile, reference
        self.threads, self.n_ctx = threads, n_ctx
        self.servers: dict = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="specscope-ref-")
        self.files: tuple[str, str | None] | None = None
        self.version: str | None = None
        self.engine = LLAMACPP  # a URL's: llama.cpp, vllm or sglang (engine_served.detect_engine)
        self.model = ""  # vLLM's served model name
        self.curve: dict[int, float] | None = None  # measure_curve's

    def check(self) -> None:
        """Before any model loads: the binary and the files exist."""
        if self.reference == LLAMACPP:
            from specscope.remote.llama_server import require_llama_server

            require_llama_server()
            self.files = gguf_pair(self.profile, self._tmp.name)
            return
        from specscope.bench.engine_served import detect_engine
        from specscope.remote.http import HttpClient

        client = HttpClient(self.reference)
        self.engine = detect_engine(client)
        if self.engine == "vllm":
            models = client.get("/v1/models").get("data") or [{}]
            self.model = str(models[0].get("id", ""))

    def url(self, config: Config) -> str:
        if self.reference != LLAMACPP:
            return self.reference
        key = config.draft_len if config.method == DRAFT else None
        if key not in self.servers:
            from specscope.remote.llama_server import LlamaServer

            target, drafter = self.files or gguf_pair(self.profile, self._tmp.name)
            t = str(self.threads)
            args = ["-t", t, "-tb", t, "-c", str(self.n_ctx), "-np", "1", "--no-webui"]
            if key is not None:
                args += ["--spec-type", "draft-simple", "-td", t, "-tbd", t]
                if key != "auto":
                    args += ["--spec-draft-n-max", str(key), "--spec-draft-n-min", "0",
                             "--spec-draft-p-min", "0"]
            self.servers[key] = LlamaServer(target, draft=drafter if key is not None else None,
                                            args=args).start()
        return self.servers[key].url

    def describe(self) -> dict:
        """For results.json: what ran (the URL of a user's server without credentials)."""
        from specscope.remote.http import redact_url

        if self.reference != LLAMACPP:
            return {"reference": redact_url(self.reference), "engine": self.engine,
                    **({"model": self.model} if self.model else {})}
        return {"reference": LLAMACPP, "gguf": list(self.files or ()), "threads": self.threads,
                **({"verify_curve": {str(k): round(v, 3) for k, v in self.curve.items()}} if self.curve else {}),
                "commands": {str(k): " ".join(s.command(s.port)[1:]) for k, s in self.servers.items()
                             if s.port}}

    def measure_curve(self, sizes=(1, 2, 4, 8, 16)) -> dict[int, float] | None:
        """llama.cpp's verify-cost curve on the target GGUF: a pass over r tokens in 1-token
        passes, from its own `llama-bench -p 1,2,4,...` (the same threads); None where there is
        no llama-bench beside llama-server, or for a URL reference."""
        import json
        import subprocess
        from pathlib import Path

        from specscope.remote.llama_server import require_llama_server

        if self.reference != LLAMACPP:
            return None
        tool = Path(require_llama_server()).with_name("llama-bench")
        if not tool.is_file():
            return None
        target = (self.files or gguf_pair(self.profile, self._tmp.name))[0]
        cmd = [str(tool), "-m", target, "-p", ",".join(map(str, sizes)), "-n", "0",
               "-t", str(self.threads), "-r", "3", "-o", "json"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
            self.curve = parse_llama_bench(json.loads(done.stdout))
        except (subprocess.SubprocessError, ValueError, KeyError, OSError):
            self.curve = None
        return self.curve

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        self._tmp.cleanup()

    def measure(self, ids: list[int], config: Config, controls, eos: set[int]) -> Measured:
        from specscope.remote.http import HttpClient

        if controls.temperature > 0:
            raise SpecScopeError("the engine reference rows run greedy only (--temperature 0)")
        client = HttpClient(self.url(config), timeout=3600)
        if self.engine != LLAMACPP:  # a vLLM or SGLang server's own decoding
            from specscope.bench import engine_served as S

            try:
                if self.engine == "vllm":
                    return S.vllm_measure(client, self.model, ids, controls.max_new_tokens, eos)
                return S.sglang_measure(client, ids, controls.max_new_tokens, eos)
            finally:
                client.close()
        body = {"prompt": list(ids), "n_predict": controls.max_new_tokens, "temperature": 0.0,
                "cache_prompt": False, "return_tokens": True, "stream": False}
        t0 = time.perf_counter()
        answer = client.post("/completion", body, idempotent=False)
        wall = time.perf_counter() - t0
        client.close()
        return parse_completion(answer, wall, eos)


def parse_completion(answer: dict, wall_s: float, eos: set[int]) -> Measured:
    """A /completion answer as one bench run."""
    tokens = list(answer.get("tokens") or [])
    timings = answer.get("timings") or {}
    if not timings:
        raise SpecScopeError("the server answered without timings: not a llama.cpp server?")
    for i, t in enumerate(tokens):
        if t in eos:
            tokens = tokens[:i + 1]
            break
    drafted = timings.get("draft_n")
    accepted = timings.get("draft_n_accepted")
    n = int(timings.get("predicted_n") or len(tokens))
    steps = n - int(accepted or 0)
    stop = "eos" if answer.get("stop_type") in ("eos", "word") else "max_new_tokens"
    return Measured(tokens, wall_s, max(steps, 1), drafted if drafted is not None else 0,
                    accepted if accepted is not None else 0, [], [], 0.0, stop,
                    prefill_s=(timings.get("prompt_ms") or 0.0) / 1000.0,
                    server_tokens_per_s=timings.get("predicted_per_second"))


def add_own_speedups(rows: list[dict]) -> None:
    """Each engine row's speedup over that engine's own plain decoding (same category)."""
    plain = {r["category"]: r["tokens_per_s"] for r in rows if r.get("config") == PLAIN}
    decode = {r["category"]: r.get("decode_tokens_per_s") for r in rows if r.get("config") == PLAIN}
    for r in rows:
        if r.get("kind") == LLAMACPP and plain.get(r["category"]):
            r["own_speedup"] = r["tokens_per_s"] / plain[r["category"]]
            d = decode.get(r["category"])
            r["own_decode_speedup"] = r["decode_tokens_per_s"] / d if d and r.get("decode_tokens_per_s") else None


def own_speedup_note(rows: list[dict]) -> str | None:
    parts = [f"{r['config']} {r['own_speedup']:.2f}x (decode {r['own_decode_speedup']:.2f}x)"
             for r in rows if r.get("own_speedup") and r["config"] != PLAIN and r["category"] == "overall"
             and r.get("own_decode_speedup")]
    return ("llama.cpp's speculative decoding over its own plain decoding: " + ", ".join(parts)) if parts else None


def parse_llama_bench(entries: list[dict]) -> dict[int, float]:
    """llama-bench's JSON (prompt tests, n_gen 0): {r: a pass over r tokens / a 1-token pass}."""
    ns = {int(e["n_prompt"]): float(e["avg_ns"]) for e in entries if int(e.get("n_gen", 0)) == 0}
    return {r: ns[r] / ns[1] for r in sorted(ns)} if ns.get(1) else {}


def curve_note(curve: dict[int, float] | None, who: str) -> str | None:
    if not curve:
        return None
    return (f"{who} verify-cost curve (a pass over r tokens in 1-token passes): "
            + ", ".join(f"{r}: {v:.2f}" for r, v in sorted(curve.items())))
