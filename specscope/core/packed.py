"""Float32 linears on a CPU through oneDNN's packed weights.

torch's default float32 `F.linear` on a CPU reads the weights once per input row for passes of a
few rows (as a matrix-vector product, row after row) and, from four rows on, repacks the weights
on every call. A pass of k tokens then costs about k passes of one (or about two passes from
four rows on), so verifying a draft costs as much as decoding it plainly and float32
speculation cannot pay. oneDNN's inner product over weights packed once, at load time, reads
them once per pass whatever its rows, so a pass of a few rows costs about one of a single row
(docs/concepts.md, "Float32 on a CPU", has the numbers). Numerically it is float32 throughout;
only the order of the sums differs, as it already does between F.linear's row counts.

bfloat16 needs none of this: its F.linear already runs on oneDNN (packing gains nothing). Only
inference passes use these layers (no autograd): `mtp train` never packs.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from specscope.core.quant import QuantLinear


def pack_available(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether packing applies: float32 on a CPU with oneDNN, unless SPECSCOPE_PACK=0."""
    return (dtype == torch.float32 and device.type == "cpu" and torch.backends.mkldnn.is_available()
            and os.environ.get("SPECSCOPE_PACK", "1") != "0")


class PackedLinear(QuantLinear):
    """A float32 nn.Linear whose weights are held in oneDNN's packed layout. `keep_dense` keeps
    the plain weights too (the LM head: tied to the embedding, so usually no extra memory), for
    cutting rows (`select_rows`, `[:k]`: VocabTrim's ranked rows, which are packed in turn)."""

    bits = 32

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, keep_dense: bool = False) -> None:
        super().__init__(weight.shape[1], weight.shape[0], bias)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())
        self.dense = weight if keep_dense else None  # the Parameter itself (tied: the embedding's)

    @classmethod
    def from_linear(cls, linear: nn.Linear, keep_dense: bool = False) -> PackedLinear:
        return cls(linear.weight, linear.bias, keep_dense)

    def dequantize(self) -> torch.Tensor:
        return self.dense.detach() if self.dense is not None else self.packed.to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.packed, self.bias,
                                               "none", [], "")
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def select_rows(self, index: torch.Tensor) -> PackedLinear:
        bias = None if self.bias is None else self.bias[index]
        return PackedLinear(self.weight[index.to(self.packed.device)], bias, keep_dense=True)

    def __getitem__(self, rows: slice) -> PackedLinear:
        bias = None if self.bias is None else self.bias[rows]
        return PackedLinear(self.weight[rows], bias, keep_dense=True)


def pack_model(model: nn.Module) -> int:
    """Replace every float32 nn.Linear of `model` on a CPU by a PackedLinear, in place; returns
    how many. Nothing happens where packing does not apply (pack_available). The output
    embeddings (when `model` has them) keep their plain weights as well."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    swaps = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children()
             if isinstance(child, nn.Linear) and pack_available(child.weight.dtype, child.weight.device)]
    for parent, name in swaps:
        child = getattr(parent, name)
        setattr(parent, name, PackedLinear.from_linear(child, keep_dense=child is head))
    if swaps:
        _own_the_rest(model)
    return len(swaps)


@torch.no_grad()
def _own_the_rest(model: nn.Module) -> None:
    """Copy the tensors left (embedding, norms, biases) out of the weights file. transformers
    memory-maps it and every tensor keeps the whole mapping alive, so without this the pages the
    packing read stay mapped beside the packed copy: 13.1 GB resident for the embedded float32
    target and int4 drafter instead of 8.7 (measured)."""
    for t in list(model.parameters()) + [b for b in model.buffers() if b is not None]:
        t.data = t.data.clone()
