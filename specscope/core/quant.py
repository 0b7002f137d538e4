"""Quantization of a model's Linear layers: int8 per output row, or int4 in groups (weights
only); or w8a8, int8 weights times int8 activations (W8A8Linear, at the end of the int8 part).

Only the weights are quantized; activations stay in the model's dtype, except that float32
inputs enter the CPU kernels as bfloat16 (the kernels are many times slower on float32 inputs).
Decoding on a CPU is memory-bound (every weight is read once per token), so fewer bytes per
weight make a pass cheaper. The embedding lookup stays as it is; the LM head is a Linear like
any other.

int8:  w[n, :] ~= q[n, :] * scale[n]             (symmetric, q in [-127, 127])
int4:  w[n, g] ~= (q[n, g] - 8) * scale + zero   (asymmetric per group of `group_size` inputs,
                                                  q in [0, 15]; torch's convention)

On a CPU, passes of a few tokens (decoding, drafting, verification) run on torch's weight-only
kernels (`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`), which read the small weights
directly. Those kernels cost time linear in the number of tokens, so a long pass (a prefill)
dequantizes the weights on the fly and runs one ordinary matmul instead, except where the kernel
changes the precision: float32 inputs, which the kernel takes in bfloat16 (and returns rounded to
bfloat16), run on the kernel whatever the pass size, so a row's output does not depend on how
many rows share its pass (the kernel computes each row on its own: bitwise the same at 1 row
and at 40). Otherwise plain decoding (1 row a pass) and the verification of a large tree (17+
rows) would compute p in two precisions, and greedy speculation would part from plain decoding
at a near tie. Off the CPU, or where a shape does not suit the int4 kernel (rows not a multiple
of 16), it always dequantizes: slower, never wrong, in the input's own precision at every size.
An input size no int4 group tiles falls back to int8.

int4 keeps its codes twice: in the kernel's layout, and as plain nibbles (two a byte, row by
row) for dequantizing and for cutting rows. A quantized head can be cut to some of its rows
(`select_rows`, then `[:k]`), which VocabTrim's ranked head needs: int8 rows slice trivially;
the int4 kernel's layout interleaves 64-row blocks, so a slice is rounded up to whole blocks and
the extra logits are dropped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specscope.core.errors import SpecScopeError

DRAFT_MODES = ("none", "int8", "int4")  # w8a8 drafts no cheaper than int8 (measured)
TARGET_MODES = ("none", "int8", "w8a8")
INT4_GROUP = 64  # inputs per int4 scale/zero pair (32, 64, 128, 256 work with the kernel)
INT4_BLOCK = 64  # rows the CPU int4 kernel packs together
KERNEL_MAX_TOKENS = 16  # longer passes (prefill) dequantize and run one matmul, unless float32


def check_mode(mode: str, allowed: tuple[str, ...], what: str) -> str:
    if mode not in allowed:
        raise SpecScopeError(f"{what} must be one of {', '.join(allowed)}, got '{mode}'")
    return mode


def _use_kernel(x2: torch.Tensor) -> bool:
    """Short passes; and every pass whose inputs the kernel takes in another dtype (float32 in
    bfloat16), so a row's precision never depends on the pass size."""
    return x2.device.type == "cpu" and (x2.shape[0] < KERNEL_MAX_TOKENS or
                                        _kernel_dtype(x2) != x2.dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1]).contiguous()


def aligned(t: torch.Tensor) -> torch.Tensor:
    """t, copied where its data does not start on a 64-byte boundary. Codes memory-mapped from
    the quantized-weights cache can start anywhere in the file, and the int8 kernel's bfloat16
    path crashes (a segmentation fault) on unaligned codes. The int4 kernel runs on them as
    they are (every cached int4 layer of the embedded drafter is unaligned; copying them would
    cost 233 MB resident for nothing)."""
    return t if t.data_ptr() % 64 == 0 else t.clone()


def _kernel_dtype(x2: torch.Tensor) -> torch.dtype:
    """The activations' dtype on the kernel path: float32 inputs run in bfloat16 (the weight-only
    kernels are many times slower on float32 inputs; the weights are 4 or 8 bits anyway).
    The int8 kernel's bfloat16 path needs whole 16-input blocks (it crashes on others)."""
    if x2.dtype == torch.float32 and x2.shape[-1] % 16 == 0:
        return torch.bfloat16
    return x2.dtype


def _as(t: torch.Tensor, dtype: torch.dtype, memo: dict) -> torch.Tensor:
    """t in dtype, converted once (per layer, per dtype)."""
    if t.dtype == dtype:
        return t
    if dtype not in memo:
        memo[dtype] = t.to(dtype)
    return memo[dtype]


class QuantLinear(nn.Module):
    """Common parts: shapes, bias, and `weight` as a dequantized copy (for inspection and tests;
    it costs a full dequantization, so the forward pass never uses it on the kernel path)."""

    bits = 16

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self._memo: dict = {}  # scales in the kernel's activation dtype, converted once

    @property
    def weight(self) -> torch.Tensor:
        return self.dequantize()

    def weight_count(self) -> int:
        """Weights (and biases) this layer stands for, as an nn.Linear would count them."""
        return self.in_features * self.out_features + (0 if self.bias is None else self.bias.numel())

    def _finish(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = y.reshape(*x.shape[:-1], y.shape[-1])
        return y if self.bias is None else y + self.bias[: y.shape[-1]]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


class Int8Linear(QuantLinear):
    bits = 8

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__(q.shape[1], q.shape[0], bias)
        self.register_buffer("q", aligned(q))  # [out, in] int8
        self.register_buffer("scale", scale)  # [out], the model's dtype

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(q, scale.to(linear.weight.dtype), linear.bias)

    def dequantize(self) -> torch.Tensor:
        return self.q.float().mul(self.scale.float()[:, None]).to(self.scale.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = _flat(x)
        if _use_kernel(x2):
            dt = _kernel_dtype(x2)
            y = torch.ops.aten._weight_int8pack_mm(x2.to(dt), self.q, _as(self.scale, dt, self._memo))
            y = y.to(x2.dtype)
        else:
            y = F.linear(x2, self.q.to(x2.dtype)) * self.scale.to(x2.dtype)
        return self._finish(y, x)

    def select_rows(self, index: torch.Tensor) -> Int8Linear:
        index = index.to(self.q.device)
        bias = None if self.bias is None else self.bias[index]
        return Int8Linear(self.q[index].contiguous(), self.scale[index].contiguous(), bias)

    def __getitem__(self, rows: slice) -> Int8Linear:
        """The first rows (`[:k]`): views, no copy."""
        bias = None if self.bias is None else self.bias[rows]
        return Int8Linear(self.q[rows], self.scale[rows], bias)


class W8A8Linear(Int8Linear):
    """int8 weights (Int8Linear's codes) times int8 activations, summed in int32.

    Each input row is quantized on its own (symmetric, per row: x ~= xq * s), multiplied with
    the codes by an integer matmul (`torch._int_mm`, oneDNN's VNNI path on x86), and scaled back
    in float32: y = (xq @ q.T) * s * scale. Integer sums are exact (|sum| <= in * 127^2 < 2^31
    for any input size below 133,000), so a row's output is bitwise the same whatever else
    shares its pass: 1 row, a 17-row tree, a 300-row prefill. No precision switch by pass size,
    and one path for every pass. An integer matmul reads half of bfloat16's bytes: the fastest
    one-row pass of the torch target on a CPU with VNNI; from 2 rows oneDNN's kernel is
    compute-bound, so verification is not flat (docs/concepts.md, "w8a8"). It changes the model
    (activations rounded to 8 bits), as any quantization does: its own greedy output is the law
    every method keeps. The rounding also magnifies attention's last-bit differences between
    pass sizes, so a w8a8 model's attention runs row by row (rowwise_for_w8a8)."""

    bits = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = _flat(x)
        if x2.device.type != "cpu":
            return super().forward(x)  # no integer matmul path assumed off the CPU
        xf = x2.float()
        s = (xf.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
        xq = torch.round(xf / s).clamp(-127, 127).to(torch.int8)
        y = torch._int_mm(xq, self.q.t()).float() * s * _as(self.scale, torch.float32, self._memo)
        return self._finish(y.to(x2.dtype), x)

    @classmethod
    def of(cls, layer: Int8Linear) -> W8A8Linear:
        return cls(layer.q, layer.scale, layer.bias)

    def select_rows(self, index: torch.Tensor) -> W8A8Linear:
        return W8A8Linear.of(super().select_rows(index))

    def __getitem__(self, rows: slice) -> W8A8Linear:
        return W8A8Linear.of(super().__getitem__(rows))


def int4_codes(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes [out, in] in 0..15 (uint8) and scale/zero pairs [in/group, out, 2] (float32):
    min/max per group, so both ends of every group are represented exactly."""
    n, k = w.shape
    g = w.float().reshape(n, k // group_size, group_size)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    scale = ((hi - lo) / 15).clamp(min=1e-12)
    q = torch.round((g - lo) / scale).clamp(0, 15).to(torch.uint8).reshape(n, k)
    zero = lo + 8 * scale
    pairs = torch.cat([scale, zero], -1).transpose(0, 1).contiguous()
    return q, pairs


class Int4Linear(QuantLinear):
    bits = 4

    def __init__(self, nibbles: torch.Tensor | None, pairs: torch.Tensor, group_size: int,
                 bias: torch.Tensor | None, packed: torch.Tensor | None = None,
                 out_features: int | None = None) -> None:
        """nibbles: [out, in/2] uint8, two codes a byte (row-major, row-separable); packed: the
        CPU kernel's layout, or None where it cannot run."""
        rows = pairs.shape[1]
        super().__init__(pairs.shape[0] * group_size, out_features or rows, bias)
        self.group_size = group_size
        self.register_buffer("nibbles", nibbles)
        self.register_buffer("pairs", pairs)  # [in/group, rows, 2], the model's dtype
        self.register_buffer("packed", packed)

    @staticmethod
    def kernel_fits(out_features: int, in_features: int, group_size: int) -> bool:
        return out_features % 16 == 0 and in_features % group_size == 0 and group_size >= 32

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = INT4_GROUP) -> Int4Linear | Int8Linear:
        n, k = linear.weight.shape
        if k % group_size or k % 2:
            return Int8Linear.from_linear(linear)  # int4 groups cannot tile this input size
        q, pairs = int4_codes(linear.weight.detach(), group_size)
        return cls.from_codes(q, pairs.to(linear.weight.dtype), group_size, linear.bias,
                              linear.weight.device)

    @classmethod
    def from_codes(cls, q: torch.Tensor, pairs: torch.Tensor, group_size: int,
                   bias: torch.Tensor | None, device: torch.device) -> Int4Linear:
        n, k = q.shape
        packed = None
        if device.type == "cpu" and cls.kernel_fits(n, k, group_size):
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 1)
        return cls(q[:, 0::2] | (q[:, 1::2] << 4), pairs, group_size, bias, packed)

    def codes(self) -> torch.Tensor:
        """[out, in] uint8 codes in 0..15."""
        q = torch.stack([self.nibbles & 15, self.nibbles >> 4], -1)
        return q.reshape(self.nibbles.shape[0], -1)[: self.out_features]

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """[out, in] weights, computed in `dtype` (default: the model's)."""
        dtype = dtype or self.pairs.dtype
        q = self.codes()
        n, groups = q.shape[0], self.pairs.shape[0]
        scale, zero = self.pairs[:, :n, 0].t().to(dtype), self.pairs[:, :n, 1].t().to(dtype)
        w = q.reshape(n, groups, self.group_size).to(dtype) * scale[..., None] \
            + (zero - 8 * scale)[..., None]
        return w.reshape(n, -1)

    def _kernel(self, x2: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x2, self.packed, self.group_size, pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = _flat(x)
        if self.packed is not None and _use_kernel(x2):
            dt = _kernel_dtype(x2)
            y = self._kernel(x2.to(dt), _as(self.pairs, dt, self._memo))[:, : self.out_features]
            y = y.to(x2.dtype)
        else:
            y = F.linear(x2, self.dequantize(x2.dtype))
        return self._finish(y, x)

    def select_rows(self, index: torch.Tensor) -> Int4Linear:
        q = self.codes()[index.to(self.pairs.device)]
        bias = None if self.bias is None else self.bias[index]
        return Int4Linear.from_codes(q.contiguous(), self.pairs[:, index].contiguous(), self.group_size,
                                     bias, self.pairs.device)

    def __getitem__(self, rows: slice) -> Int4Linear:
        """The first k rows (`[:k]`). On the kernel path the packed weights are cut at a whole
        64-row block (the kernel's unit) and the extra outputs dropped."""
        k = len(range(*rows.indices(self.out_features)))
        if rows.start not in (None, 0) or rows.step not in (None, 1):
            raise ValueError("only a leading slice [:k] of an int4 layer is supported")
        if k == self.out_features:
            return self
        bias = None if self.bias is None else self.bias[:k]
        if self.packed is None:
            return Int4Linear(self.nibbles[:k], self.pairs[:, :k], self.group_size, bias)
        blocks = min(-(-k // INT4_BLOCK) * INT4_BLOCK, self.pairs.shape[1])
        return Int4Linear(self.nibbles[:blocks], self.pairs[:, :blocks].contiguous(), self.group_size,
                          bias, self.packed[:blocks], out_features=k)


def weight_count(module: nn.Module) -> int:
    """Weights in `module`: its parameters, and its quantized linears at their full shapes."""
    return (sum(p.numel() for p in module.parameters())
            + sum(m.weight_count() for m in module.modules() if isinstance(m, QuantLinear)))


def quantize_model(model: nn.Module, mode: str, group_size: int = INT4_GROUP) -> int:
    """Replace every nn.Linear of `model` (the LM head included) by its quantized version, in
    place. Returns how many were replaced."""
    if mode == "none":
        return 0
    check_mode(mode, tuple(dict.fromkeys(DRAFT_MODES + TARGET_MODES)), "quantization")
    # (parent, name) only: each original Linear is freed as soon as its replacement is in.
    swaps = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, nn.Linear)]
    for parent, name in swaps:
        child = getattr(parent, name)
        if mode == "int4":
            new = Int4Linear.from_linear(child, group_size)
        else:
            new = (W8A8Linear if mode == "w8a8" else Int8Linear).from_linear(child)
        setattr(parent, name, new)
        del child
    if mode == "w8a8":
        rowwise_for_w8a8(model)
    return len(swaps)


def rowwise_for_w8a8(model: nn.Module) -> None:
    """A w8a8 model's attention must compute each row as a one-row pass does: its 8-bit rounding
    turns attention's last-bit differences between pass sizes into whole steps
    (rowwise_attention.py). Called wherever w8a8 layers are put in (here, the cache's loader)."""
    from specscope.core.rowwise_attention import use_rowwise

    use_rowwise(model)
