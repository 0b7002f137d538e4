"""Know the machine: what it is (instruction sets, threads, torch) and what a pass costs on it.

`specscope doctor` and the `auto` profile values rest on these numbers. What a pass of a model
costs depends on the CPU far more than on the model: bfloat16 matmuls are memory-bound where the
CPU has native bfloat16 (AVX-512 BF16, AMX) and compute-bound where it has not (AVX2 only); the
weight-only int4 kernel is cheap with AVX-512 and costs more than an unquantized pass without it.
So the costs are measured here, on this machine, never assumed.

How a model is measured without loading it (the first run must answer in under a minute, before
any conversion of the weights): a *proxy* with the model's own shapes (hidden size, MLP width,
heads) but only PROXY_LAYERS decoder layers and 1/HEAD_SHARE of the vocabulary, random weights,
in the dtype and weight format under test (the same quantization and packing code a real run
uses). Its pass over r tokens, minus the LM head's, is PROXY_LAYERS layers' worth, and its head
reads 1/HEAD_SHARE of the real head's rows (an LM head's cost is proportional to its rows);
the full model's pass is
    t(r) = HEAD_SHARE * head(r) + layers * (proxy(r) - head(r)) / PROXY_LAYERS.
A proxy layer's weights (tens of MB at least) do not fit in the caches, so it reads memory as the
real layer does. `bench`'s cost table measures the real pair and shows both.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from specscope.core.chooser import Costs
from specscope.core.errors import SpecScopeError

PASS_ROWS = (1, 2, 4, 8, 16)  # tokens a pass: decoding (1) and verification of drafts
PREFILL_ROWS = 128  # tokens a pass when reading a prompt (a chunk)
PROXY_LAYERS = 2
HEAD_SHARE = 4  # the proxy's head has this much fewer rows (still far larger than the caches)
CONTEXT = 32  # tokens already in the KV cache when a pass is timed
FORMAT_VERSION = 3  # bump when what is measured changes: older cache files are measured again

# The instruction sets that decide which kernels run (x86 names as /proc/cpuinfo spells them).
KNOWN_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
               "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni",
               "asimd", "sve", "sve2", "bf16", "i8mm")


# ---- what the machine is -----------------------------------------------------------------------
@dataclass(frozen=True)
class MachineInfo:
    cpu: str
    arch: str
    flags: tuple[str, ...]  # of KNOWN_FLAGS, those this CPU has
    capability: str  # the ATen kernels torch dispatches to here (AVX512, AVX2, DEFAULT, ...)
    onednn_isa: str  # ONEDNN_MAX_CPU_ISA when set (it caps oneDNN's kernels), else ""
    threads: int
    torch: str
    device: str

    @property
    def key(self) -> str:
        """Names the cache file: a different CPU, torch, thread count or device measures again."""
        text = json.dumps([asdict(self), FORMAT_VERSION], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def has(self, flag: str) -> bool:
        return flag in self.flags


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            name = value.strip()
        elif key in ("flags", "features"):
            flags |= set(value.split())
    return name, flags


def machine_info(device: str = "cpu") -> MachineInfo:
    name, flags = _cpuinfo()
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        capability = "unknown"
    return MachineInfo(cpu=name, arch=platform.machine(),
                       flags=tuple(f for f in KNOWN_FLAGS if f in flags), capability=capability,
                       onednn_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
                       threads=torch.get_num_threads(), torch=torch.__version__, device=device)


def memory_bandwidth_gbs(mb: int = 256, repeats: int = 5) -> float:
    """This machine's memory bandwidth as torch sees it: the best of a few large copies (read +
    write counted)."""
    src = torch.ones(mb << 18)  # mb MiB of float32
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * src.element_size() / best / 1e9


# ---- what a model's pass costs --------------------------------------------------------------
def shape_key(config) -> str:
    """The shapes that decide a pass's cost (not the weights). Not whether the output matrix is
    the input embedding's: a pass reads one output matrix either way, and the embedded pair's
    config before its first conversion (model_config.EMBEDDED_SHAPES) and after it (the GGUF
    converted, with an output matrix of its own) differ there, which had every command after
    the first measure the machine again."""
    c = getattr(config, "get_text_config", lambda: config)()
    parts = [type(c).__name__] + [getattr(c, a, None) for a in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "vocab_size")]
    return "-".join(str(p) for p in parts)


def _proxy(config, layers: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    c = copy.deepcopy(getattr(config, "get_text_config", lambda: config)())
    c.num_hidden_layers = layers
    c.vocab_size = max(1024, c.vocab_size // HEAD_SHARE // 64 * 64)  # whole int4 kernel blocks
    c.pad_token_id = None  # may lie past the smaller vocabulary; a proxy pads nothing
    if hasattr(c, "layer_types") and c.layer_types is not None:
        c.layer_types = list(c.layer_types)[:layers]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(c, dtype=torch.float32)
    return model.eval()


def _timed(fn, reps: int, warm: int = 2) -> float:
    """The best of `reps` timings after `warm` untimed calls (first calls allocate and pick
    kernels); the best, since what else runs on the machine only ever adds time."""
    for _ in range(warm):
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@torch.inference_mode()
def _measure(lm, rows_list: tuple[int, ...], reps: int, scale: float = 1.0,
             head_scale: float = 1.0) -> Costs:
    """Seconds of a pass over r tokens after CONTEXT cached ones (the logits of every position),
    and prompt reading, PREFILL_ROWS tokens a pass. `lm` is loaded (CachedLM or LlamaCppLM: its
    rows are logits already, so its head costs nothing apart); a proxy's body and head are
    scaled to the real model's (see the module's docstring)."""
    vocab = lm.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (CONTEXT + PREFILL_ROWS + max(rows_list),), generator=gen).tolist()
    ctx = ids[:CONTEXT]
    lm.reset()
    lm.prefill(ctx)
    passes = {}
    for rows in rows_list:
        new = ids[CONTEXT:CONTEXT + rows]

        def body():
            lm.forward(ctx + new, n_last=rows)

        hidden = lm.forward(ctx + new, n_last=rows)
        t_head = _timed(lambda: lm.logits(hidden), reps)
        t_body = _timed(body, reps)  # every call crops back to ctx, then feeds `rows` tokens
        passes[rows] = head_scale * t_head + scale * t_body
    for a, b in zip(sorted(passes, reverse=True)[1:], sorted(passes, reverse=True)):
        passes[a] = min(passes[a], passes[b])  # fewer tokens never cost more: that is noise
    lm.reset()
    chunk = ids[:PREFILL_ROWS]
    t_read = _timed(lambda: (lm.reset(), lm.forward(chunk, n_last=1)), max(1, reps // 2))
    t_one = _timed(lambda: lm.logits(hidden[:1]), reps)
    lm.reset()
    return Costs(passes, PREFILL_ROWS / (scale * t_read + head_scale * t_one))


def _measure_proxy(model: torch.nn.Module, layers: int, total_layers: int, rows_list: tuple[int, ...],
                   reps: int, head_scale: float) -> Costs:
    from specscope.core.lm import CachedLM

    return _measure(CachedLM(model, check=False), rows_list, reps, total_layers / layers, head_scale)


def measure_lm(lm, rows: tuple[int, ...] = PASS_ROWS, reps: int = 5) -> Costs:
    """The pass costs of a loaded model, itself (no proxy): what `bench` shows as the verify-cost
    curve of the backend it ran, and how a GGUF is measured on llama.cpp. Leaves it reset."""
    return _measure(lm, rows, reps)


GGUF = "gguf"  # the dtype a llama.cpp format is filed under: "gguf/q4_k_m" (what its session says)


def measure_gguf(path, rows: tuple[int, ...] = PASS_ROWS, reps: int = 5) -> tuple[str, Costs]:
    """A GGUF file's pass costs on llama.cpp (the real model: it loads in a second, mapped), and
    its format key "gguf/TYPE"."""
    from specscope.core.llamacpp import LlamaCppLM

    lm = LlamaCppLM(path)
    try:
        return f"{GGUF}/{lm.quant}", measure_lm(lm, rows, reps)
    finally:
        del lm


def measure_model(config, formats: list[tuple[str, str]], device: str = "cpu", reps: int = 7,
                  progress=None, label: str = "model",
                  rows: tuple[int, ...] = PASS_ROWS) -> dict[tuple[str, str], Costs]:
    """Pass costs of a model with `config`'s shapes in each (dtype, quant) format, from a proxy
    (see the module's docstring). Formats this machine cannot run are left out."""
    from specscope.core.packed import pack_model
    from specscope.core.quant import quantize_model

    c = getattr(config, "get_text_config", lambda: config)()
    total = int(c.num_hidden_layers)
    layers = min(PROXY_LAYERS, total)
    base = _proxy(config, layers)
    head_scale = c.vocab_size / base.config.vocab_size
    out = {}
    for i, (dtype, quant) in enumerate(formats):
        if progress:
            progress(f"measuring {label} passes", i, len(formats))
        model = copy.deepcopy(base).to(device=device, dtype=getattr(torch, dtype))
        try:
            if quant != "none":
                quantize_model(model, quant)
            pack_model(model)
            out[(dtype, quant)] = _measure_proxy(model, layers, total, rows, reps, head_scale)
        except (RuntimeError, NotImplementedError):  # a kernel this build or CPU lacks
            continue
        finally:
            del model
    if progress:
        progress(f"measuring {label} passes", len(formats), len(formats))
    return out


# ---- the per-machine cache -------------------------------------------------------------------
@dataclass
class MachineReport:
    """What `doctor` measured: the machine, its memory bandwidth, and pass costs per model shape
    and format ({shape_key: {"dtype/quant": Costs}})."""

    info: MachineInfo
    memory_gbs: float
    models: dict[str, dict[str, Costs]] = field(default_factory=dict)
    seconds: float = 0.0  # how long the measurement took
    busy: float = 0.0  # the most other work seen on the machine while measuring (runnable threads)

    def costs(self, config) -> dict[tuple[str, str], Costs]:
        found = self.models.get(shape_key(config), {})
        return {tuple(k.split("/")): v for k, v in found.items()}

    def to_json(self) -> dict:
        return {"format": FORMAT_VERSION, "key": self.info.key, "info": asdict(self.info),
                "memory_gbs": self.memory_gbs, "seconds": self.seconds, "busy": self.busy,
                "models": {s: {k: asdict(v) for k, v in m.items()} for s, m in self.models.items()}}

    @classmethod
    def from_json(cls, data: dict) -> MachineReport:
        info = data["info"]
        info = MachineInfo(**{**info, "flags": tuple(info["flags"])})
        models = {s: {k: Costs({int(r): float(t) for r, t in v["passes"].items()}, float(v["prefill_tps"]))
                      for k, v in m.items()}
                  for s, m in data["models"].items()}
        if data.get("format") != FORMAT_VERSION or data.get("key") != info.key:
            raise ValueError("stale or foreign machine report")
        for m in models.values():
            for cost in m.values():
                if not cost.passes or any(not (0 < t < 1e4) for t in cost.passes.values()) \
                        or not 0 < cost.prefill_tps < 1e9:
                    raise ValueError("implausible measurement")
        return cls(info, float(data["memory_gbs"]), models, float(data.get("seconds", 0.0)),
                   float(data.get("busy", 0.0)))


def report_path(info: MachineInfo) -> Path:
    from specscope.core.embedded import cache_dir

    return cache_dir() / "machine" / f"{info.key}.json"


def load_report(info: MachineInfo) -> MachineReport | None:
    """The cached report for this machine, or None (none yet, or unreadable: measured again)."""
    path = report_path(info)
    try:
        report = MachineReport.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return report if report.info == info else None


def save_report(report: MachineReport) -> Path:
    from specscope.core.files import atomic_write

    path = report_path(report.info)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.to_json(), indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def formats_for(info: MachineInfo, role: str) -> list[tuple[str, str]]:
    """The (dtype, weight format) pairs worth measuring for a target or a drafter here."""
    dtypes = ["float32", "bfloat16", "float16"]
    quants = ["none", "int8", "w8a8"] if role == "target" else ["none", "int8", "int4"]
    if info.device.startswith("cuda"):
        return [(d, "none") for d in dtypes[1:]] + ([("bfloat16", "int8")] if role == "target" else [])
    if not (info.has("avx512_fp16") or info.has("amx_fp16") or info.arch in ("arm64", "aarch64")):
        dtypes.remove("float16")  # converted to float32 op by op on such CPUs: never the fastest
    return [(d, q) for d in dtypes for q in quants if not (d == "float16" and q != "none")]


def measure_machine(configs: dict[str, object], device: str = "cpu", progress=None,
                    report: MachineReport | None = None, reps: int = 7,
                    ggufs: dict[str, object] | None = None) -> MachineReport:
    """Measure (or complete) the report for this machine: bandwidth once, then each model shape
    in `configs` ({role: config}) not yet measured, and each GGUF file in `ggufs` ({role: path},
    the same roles) on llama.cpp where its type is not yet measured for that shape. Saves it in
    the cache."""
    info = machine_info(device)
    start = time.perf_counter()
    others = OtherWork()
    if report is None or report.info != info:
        if progress:
            progress("measuring memory bandwidth", 0, None)
        report = MachineReport(info, round(memory_bandwidth_gbs(), 2))
    for role, config in configs.items():
        key = shape_key(config)
        rows = PASS_ROWS if role == "target" else (1,)  # a drafter's token is a one-row pass
        if key not in report.models:
            costs = measure_model(config, formats_for(info, role), device, reps, progress, role, rows)
            if not costs:
                raise SpecScopeError(f"could not measure any pass of the {role} on this machine")
            report.models[key] = {f"{d}/{q}": c for (d, q), c in costs.items()}
        path = (ggufs or {}).get(role)
        if path is not None and gguf_format(path) not in report.models[key]:
            if progress:
                progress(f"measuring {role} passes on llama.cpp", 0, None)
            fmt, costs = measure_gguf(path, rows, max(3, reps // 2))
            report.models[key][fmt] = costs
    report.seconds += time.perf_counter() - start
    report.busy = max(report.busy, others.cores())
    save_report(report)
    return report


def gguf_format(path) -> str:
    """The report's format key of a GGUF file, from its header: "gguf/q4_k_m"."""
    from specscope.core.llamacpp import file_type

    return f"{GGUF}/{file_type(path)}"


class OtherWork:
    """How many cores other processes kept busy since it was made: the machine's busy CPU time
    (/proc/stat) less this process's own, over the wall time (0 where the system does not say).
    Another job on the cores makes every pass slower, and torch's thread pool slower still:
    numbers measured then are not this machine's."""

    def __init__(self) -> None:
        self.wall, self.machine, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def cores(self) -> float:
        machine = _busy_seconds()
        if machine is None or self.machine is None:
            return 0.0
        wall = time.perf_counter() - self.wall
        other = (machine - self.machine) - (_own_seconds() - self.own)
        return max(0.0, other / wall) if wall > 0 else 0.0


def _busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system
