"""A GGUF model run by llama.cpp (through llama-cpp-python), with CachedLM's interface.

The engine, the drafters and the session use `LlamaCppLM` exactly as they use CachedLM (lm.py):
`forward(ids, n_last)` makes llama.cpp's KV cache cover `ids` (synced by longest common prefix;
rollback to any length is a sequence removal, `llama_memory_seq_rm`) and returns what comes out
of the model for the last `n_last` positions. llama.cpp returns logits, not hidden states, so
the rows are float32 logits over the full vocabulary: `hidden_size` is the vocabulary size and
`logits(rows)` is the identity (or the columns of a VocabTrim ranking, `head_rows`). Methods that
need hidden states (layer skipping, FastMTP) do not run here (frontends/preflight.py refuses
them). A pass asks llama.cpp for logits only where they are read: none while reading a prompt.

Tree verification is one `llama_decode` over a unified KV cache with several sequence ids per
token: the committed context is sequence 0; every leaf of the tree gets its own sequence (a
copy of the context's cells, `llama_memory_seq_cp`, metadata only); the root belongs to all of
them and each node to the sequences of the leaves below it. llama.cpp masks each token to the
cells of its first sequence at positions up to its own, which are exactly the context, the root,
the node's ancestors and itself. `keep_path` adds the accepted path's cells to sequence 0 and
drops every other sequence (`llama_memory_seq_keep`): O(cells) metadata, no copy of keys.

Weights are what the GGUF holds (`quant` names its type); nothing is converted or requantized.
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from specscope.core.errors import SpecScopeError
from specscope.core.lm import PREFILL_CHUNK, read_in_chunks, reset_on_failure, sync_cache
from specscope.core.tree import children, depths

BACKEND = "llama.cpp"
INSTALL_HINT = ("pip install 'specscope[llamacpp]' (llama-cpp-python, built from source: about "
                "5 minutes on 2 cores)")
N_CTX = 8192  # KV cells (at most the model's trained context): 230 MB for the 1.5B target
MAX_SEQS = 64  # sequence ids: the context plus one per tree leaf
# keys and values as llama.cpp stores them: (ggml type, bytes an element); f16 is its default
KV_TYPES = {"f16": (1, 2), "f32": (0, 4)}
# llama.cpp's flash attention: auto (its default; on for a CPU) rounds q.k through float16, so
# logits sit ~1e-3 relative from a float32 reference; off computes attention in float32
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


_errors: list[str] = []  # llama.cpp's recent error lines, for one-line messages
_log_hook = None  # the ctypes callback must outlive every call into the library


def binding():
    """The llama_cpp module, its backend initialised and its logging quieted (errors are kept
    for messages, nothing is printed); one clear line when it is not installed."""
    global _log_hook
    try:
        import llama_cpp
    except ImportError:
        raise SpecScopeError(f"the llama.cpp backend needs llama-cpp-python: {INSTALL_HINT}") from None
    if _log_hook is None:
        def hook(level: int, text: bytes, _user) -> None:
            if level == 4 and text and len(_errors) < 8:  # GGML_LOG_LEVEL_ERROR
                _errors.append(text.decode("utf-8", "replace").strip())

        _log_hook = llama_cpp.llama_log_callback(hook)
        llama_cpp.llama_log_set(_log_hook, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
    return llama_cpp


def _first_error(default: str) -> str:
    """The first error llama.cpp logged since the last call (its cause; later lines say that
    the call failed), without the function names it starts with."""
    lines = [e for e in _errors if e]
    _errors.clear()
    return lines[0].split(": ")[-1] if lines else default


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def file_type(path: str | os.PathLike) -> str:
    """The GGUF's weight type, llama.cpp's file type in lower case: 'f32', 'q8_0', 'q4_k_m'.
    Read from the header only."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        name = gguf.LlamaFileType(value).name
    except ValueError:
        return f"type{value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()


HEAD_TENSORS = ("token_embd.weight", "output.weight")


def _tensor_sizes(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """{tensor name: (elements, bytes as stored)} from the GGUF's header."""
    import gguf

    return {t.name: (int(t.n_elements), int(t.n_bytes)) for t in gguf.GGUFReader(str(path)).tensors}


class LlamaKV:
    """What the engine and cache_bytes see of llama.cpp's KV cache: `crop` (drop the last
    entries of sequence 0, as drop_last asks) and `kv_bytes` (keys and values held)."""

    def __init__(self, lm: LlamaCppLM) -> None:
        self.lm = lm

    def crop(self, count: int) -> None:
        if count >= 0:  # drop_last passes a negative count: "drop that many"
            raise ValueError("LlamaKV.crop takes a negative count")
        self.lm.drop_from(len(self.lm.ids) + count)

    def kv_bytes(self) -> int:
        return len(self.lm.ids) * self.lm.cell_bytes


class LlamaCppLM:
    prefill_chunk = PREFILL_CHUNK  # tokens a pass over long inputs (tests set small ones)
    backend = BACKEND

    def __init__(self, path: str | os.PathLike, n_ctx: int = N_CTX, threads: int | None = None,
                 max_seqs: int = MAX_SEQS, batch: int = PREFILL_CHUNK, kv_type: str = "f16",
                 flash_attn: str = "auto") -> None:
        L = self._L = binding()
        self.path = Path(path)
        if not self.path.is_file():
            raise SpecScopeError(f"GGUF file not found: {self.path}")
        params = L.llama_model_default_params()
        params.n_gpu_layers = 0
        _errors.clear()
        self._model = L.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise SpecScopeError(f"llama.cpp cannot load {self.path}: "
                                 f"{_first_error('not a model it reads')}")
        self._vocab = L.llama_model_get_vocab(self._model)
        self.vocab_size = int(L.llama_vocab_n_tokens(self._vocab))
        self.n_embd = int(L.llama_model_n_embd(self._model))
        self.threads = threads or cpu_threads()
        self.max_seqs = max_seqs
        self.batch = batch
        cp = L.llama_context_default_params()
        cp.n_ctx = min(n_ctx, int(L.llama_model_n_ctx_train(self._model)) or n_ctx)
        cp.n_batch = cp.n_ubatch = batch
        cp.n_seq_max = max_seqs
        cp.kv_unified = True  # one cell store all sequences share: trees in one pass
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.no_perf = True
        if flash_attn not in FLASH_ATTN:
            raise SpecScopeError(f"flash attention {flash_attn}: choose from {', '.join(FLASH_ATTN)}")
        cp.flash_attn_type = FLASH_ATTN[flash_attn]
        if kv_type not in KV_TYPES:
            raise SpecScopeError(f"KV cache type {kv_type}: choose from {', '.join(KV_TYPES)}")
        cp.type_k = cp.type_v = KV_TYPES[kv_type][0]
        self._ctx = L.llama_init_from_model(self._model, cp)
        if not self._ctx:
            L.llama_model_free(self._model)
            raise SpecScopeError(f"llama.cpp cannot make a context for {self.path.name}: "
                                 f"{_first_error('out of memory?')}")
        self._mem = L.llama_get_memory(self._ctx)
        self._batch = L.llama_batch_init(max(batch, max_seqs), 0, max_seqs)
        self.n_ctx = int(L.llama_n_ctx(self._ctx))
        n_layer = int(L.llama_model_n_layer(self._model))
        head_dim = self.n_embd // int(L.llama_model_n_head(self._model))
        kv_heads = int(L.llama_model_n_head_kv(self._model))
        self.cell_bytes = n_layer * 2 * kv_heads * head_dim * KV_TYPES[kv_type][1]  # keys + values
        self.quant = file_type(self.path)
        self.device = torch.device("cpu")
        self.ids: list[int] = []
        self.cache = LlamaKV(self)
        self._below: list[list[int]] = []  # after forward_tree: each node's leaf sequences
        self._body: dict[str, tuple[int, int]] | None = None  # the GGUF's tensor sizes

    def __del__(self) -> None:
        L = getattr(self, "_L", None)
        if L is None:
            return
        if getattr(self, "_batch", None) is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            L.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            L.llama_model_free(self._model)
            self._model = None

    # --- what CachedLM offers -----------------------------------------------------------------

    @property
    def hidden_size(self) -> int:
        """Width of forward's rows: logits over the whole vocabulary."""
        return self.vocab_size

    @property
    def max_positions(self) -> int:
        return self.n_ctx

    def eos_ids(self) -> set[int]:
        """The GGUF's end-of-sequence and end-of-turn tokens."""
        L = self._L
        return {int(t) for t in (L.llama_vocab_eos(self._vocab), L.llama_vocab_eot(self._vocab))
                if 0 <= int(t) < self.vocab_size}

    def token_text(self, token: int) -> str:
        """The token as the GGUF's vocabulary stores it (byte-level BPE: 'Ġthe')."""
        return self._L.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def read_params(self, head_rows: int | None = None) -> int:
        """Weights read per decoding step (see CachedLM.read_params): every tensor but the
        embeddings, the head counted for `head_rows` rows (all by default)."""
        sizes = self._sizes()
        body = sum(n for name, (n, _) in sizes.items() if name not in HEAD_TENSORS)
        return body + (self.vocab_size if head_rows is None else head_rows) * self.n_embd

    def weight_bytes(self) -> int:
        """Bytes of weights one pass reads, as stored: every tensor but the embedding lookup
        (the head: its own tensor, or the embeddings when they are tied)."""
        sizes = self._sizes()
        head = sizes.get("output.weight", sizes.get("token_embd.weight", (0, 0)))[1]
        return sum(b for name, (_, b) in sizes.items() if name not in HEAD_TENSORS) + head

    def _sizes(self) -> dict[str, tuple[int, int]]:
        if self._body is None:
            self._body = _tensor_sizes(self.path)
        return self._body

    def quantize(self, mode: str, progress=None) -> None:
        if mode != "none":
            raise SpecScopeError(f"the llama.cpp backend runs the GGUF's own weights ({self.quant}); "
                                 f"it does not quantize them to {mode}")

    def check_logits(self) -> None:
        """Nothing to check: the logits are llama.cpp's own."""

    def head_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Columns of forward's rows for `logits(rows, index[:k])` (a VocabTrim ranking)."""
        return index.to(torch.long)

    def logits(self, hidden: torch.Tensor, weight=None) -> torch.Tensor:
        """forward's rows are logits already: themselves, or their columns `weight`."""
        return hidden if weight is None else hidden.index_select(-1, weight)

    def reset(self) -> None:
        self._L.llama_memory_clear(self._mem, True)
        self.ids = []
        self._below = []

    def drop_from(self, keep: int) -> None:
        """Keep the first `keep` cached positions of sequence 0 (rollback to any length)."""
        if keep <= 0:
            self.reset()
        elif keep < len(self.ids):
            if not self._L.llama_memory_seq_rm(self._mem, 0, keep, -1):
                self.reset()  # a memory that cannot cut part way: start clean
                return
            self.ids = self.ids[:keep]

    def forward(self, ids: list[int], n_last: int = 1) -> torch.Tensor:
        """Logits [n_last, vocab] for the last n_last positions of ids."""
        keep = sync_cache(self, ids, n_last)
        if keep == len(ids):
            return torch.empty(0, self.vocab_size)
        rows = []
        with reset_on_failure(self):
            step = min(self.prefill_chunk, self.batch)
            for start in range(keep, len(ids), step):
                end = min(start + step, len(ids))
                first_out = max(start, len(ids) - n_last)
                rows += self._decode([(ids[i], i, (0,), i >= first_out) for i in range(start, end)])
                self.ids = list(ids[:end])
        return torch.stack(rows) if rows else torch.empty(0, self.vocab_size)

    def read(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        return read_in_chunks(self, ids, self.prefill_chunk)

    def prefill(self, ids: list[int]) -> tuple[int, torch.Tensor]:
        parts = list(self.prefill_chunks(ids))
        return parts[0][0], torch.cat([h for _, h in parts])

    def prefill_chunks(self, ids: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Cover ids, `prefill_chunk` tokens a pass, yielding (start, rows) after each pass. No
        logits are asked while reading, so the rows have no columns ([n, 0]): they say how many
        positions were read."""
        keep = sync_cache(self, ids, 0)
        if keep == len(ids):
            yield keep, torch.empty(0, 0)
        step = min(self.prefill_chunk, self.batch)
        for start in range(keep, len(ids), step):
            end = min(start + step, len(ids))
            with reset_on_failure(self):
                self._decode([(ids[i], i, (0,), False) for i in range(start, end)])
            self.ids = list(ids[:end])
            yield start, torch.empty(end - start, 0)

    def forward_tree(self, ids: list[int], tokens: list[int], parents: list[int],
                     dense: bool = False) -> torch.Tensor:
        """Logits [n+1, vocab] for ids[-1] (the root) and every tree node, in one llama_decode
        with several sequence ids per token (see the module's doc). Call keep_path afterwards.
        `dense` is accepted for CachedLM's signature; there is one way here."""
        self.forward(ids[:-1], 0)
        n = len(ids)
        kids = children(parents)
        leaves = [i for i in range(len(tokens)) if not kids[i]]
        if len(leaves) + 1 > self.max_seqs or len(tokens) + 1 > self.batch:
            raise SpecScopeError(f"a draft tree of {len(tokens)} nodes and {len(leaves)} leaves "
                                 f"is larger than this llama.cpp context takes ({self.batch} "
                                 f"tokens, {self.max_seqs - 1} leaves)")
        below: list[list[int]] = [[] for _ in tokens]
        for i in reversed(range(len(tokens))):  # parents first: children come later
            below[i] = [leaves.index(i) + 1] if not kids[i] else [s for c in kids[i] for s in below[c]]
        seqs = [leaves.index(i) + 1 for i in leaves]
        L = self._L
        with reset_on_failure(self):
            for s in seqs:  # each leaf's sequence sees the context (cell metadata, no copy)
                L.llama_memory_seq_cp(self._mem, 0, s, -1, -1)
            d = depths(parents)
            rows = self._decode([(ids[-1], n - 1, (0, *seqs), True)]
                                + [(t, n + d[i], tuple(below[i]), True) for i, t in enumerate(tokens)])
        self.ids = list(ids) + [-1] * len(tokens)  # tree slots: not a sequence until keep_path
        self._below = below
        return torch.stack(rows)

    def keep_path(self, ids: list[int], tokens: list[int], path: tuple[int, ...]) -> None:
        """After forward_tree: sequence 0 gains the accepted nodes' cells (those of a leaf below
        the path's end, at the path's positions); every other sequence is dropped."""
        n = len(ids)
        L = self._L
        if path:
            L.llama_memory_seq_cp(self._mem, self._below[path[-1]][0], 0, n, n + len(path))
        L.llama_memory_seq_keep(self._mem, 0)
        self.ids = list(ids) + [tokens[i] for i in path]
        self._below = []

    # --- the one call into llama.cpp ----------------------------------------------------------

    def _decode(self, entries: list[tuple[int, int, tuple[int, ...], bool]]) -> list[torch.Tensor]:
        """One llama_decode over (token, position, sequence ids, wants logits) entries; the
        logits rows asked for, in order (float32 copies)."""
        import numpy as np

        L, b = self._L, self._batch
        if entries and entries[-1][1] >= self.n_ctx:
            raise SpecScopeError(f"the llama.cpp context holds {self.n_ctx} positions; this pass "
                                 f"reaches position {entries[-1][1] + 1}")
        b.n_tokens = len(entries)
        for i, (token, pos, seqs, out) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = len(seqs)
            for j, s in enumerate(seqs):
                b.seq_id[i][j] = s
            b.logits[i] = out
        _errors.clear()
        rc = L.llama_decode(self._ctx, b)
        if rc != 0:
            raise SpecScopeError(f"llama.cpp could not decode a pass of {len(entries)} tokens "
                                 f"(code {rc}): {_first_error('no room in its KV cache?')}")
        rows = []
        for i, entry in enumerate(entries):
            if entry[3]:
                ptr = L.llama_get_logits_ith(self._ctx, i)
                rows.append(torch.from_numpy(np.ctypeslib.as_array(ptr, shape=(self.vocab_size,)).copy()))
        return rows
