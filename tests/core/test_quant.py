"""Weight-only quantized linears: against a dequantized reference matmul, on the kernel path and
on the fallback path, and cut to some rows (VocabTrim's ranked head)."""
import pytest
import torch
from torch import nn

from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM
from specscope.core.quant import (KERNEL_MAX_TOKENS, Int4Linear, Int8Linear, QuantLinear,
                                  W8A8Linear, check_mode, int4_codes, quantize_model)
from specscope.core.tiny import tiny_model


def linear(n_in, n_out, seed=0, bias=True):
    torch.manual_seed(seed)
    lin = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        lin.weight.mul_(torch.rand(n_out, 1) * 4)  # rows of different ranges: scales must differ
    return lin


def on_kernel(module: QuantLinear, x: torch.Tensor) -> bool:
    """Whether a pass over x runs on torch's weight-only kernel: float32 inputs then go in as
    bfloat16 and the outputs come back rounded to bfloat16."""
    rows = x.reshape(-1, x.shape[-1]).shape[0]
    return ((rows < KERNEL_MAX_TOKENS or x.dtype == torch.float32)
            and getattr(module, "packed", True) is not None and x.shape[-1] % 16 == 0)


def reference(module: QuantLinear, x: torch.Tensor) -> torch.Tensor:
    """The matmul with the dequantized weights, done the plain way in float64 (over the
    bfloat16-rounded inputs where the kernel runs)."""
    bias = None if module.bias is None else module.bias.double()
    if on_kernel(module, x):
        x = x.bfloat16()
    return nn.functional.linear(x.double(), module.dequantize().double(), bias)


def assert_matches(y: torch.Tensor, module: QuantLinear, x: torch.Tensor) -> None:
    """y against the reference: float32 throughout off the kernel, to bfloat16 outputs on it."""
    want = reference(module, x)
    tol = 1e-4 if not on_kernel(module, x) else 2 ** -7 * want.abs().max().item()
    assert y.dtype == x.dtype
    torch.testing.assert_close(y.double(), want, atol=tol, rtol=1e-4)


@pytest.mark.parametrize("make", [Int8Linear.from_linear, Int4Linear.from_linear,
                                  W8A8Linear.from_linear])
def test_a_float32_rows_output_does_not_depend_on_how_many_rows_share_its_pass(make):
    # the kernel takes float32 inputs in bfloat16: a pass of 16+ rows must not run in float32
    # instead, or plain decoding and a large verification compute p in two precisions. Bitwise.
    layer = make(linear(128, 96))
    x = torch.randn(40, 128, generator=torch.Generator().manual_seed(1))
    alone = torch.cat([layer(x[i:i + 1]) for i in range(len(x))])
    for rows in (2, KERNEL_MAX_TOKENS - 1, KERNEL_MAX_TOKENS, KERNEL_MAX_TOKENS + 1, 40):
        assert torch.equal(layer(x[:rows]), alone[:rows]), rows
        assert torch.equal(layer(x[:rows][None]), alone[:rows][None]), rows  # [1, rows, in]


def test_int8_codes_and_matmul():
    lin = linear(96, 80)
    q = Int8Linear.from_linear(lin)
    w = lin.weight.detach()
    assert q.q.dtype == torch.int8 and q.q.abs().max() == 127
    assert ((q.dequantize() - w).abs() <= q.scale[:, None] / 2 + 1e-7).all()  # half a step at most
    for x in (torch.randn(2, 5, 96), torch.randn(1, 40, 96)):  # the kernel; a long pass (prefill)
        y = q(x)
        assert y.shape == (*x.shape[:-1], 80)
        assert_matches(y, q, x)
        torch.testing.assert_close(y, lin(x), atol=0.05 * w.abs().max().item() * 96 ** 0.5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_w8a8_is_the_integer_product_of_per_row_codes_whatever_shares_the_pass(dtype):
    lin = linear(160, 48).to(dtype)
    layer = W8A8Linear.from_linear(lin)
    x = (torch.randn(300, 160, generator=torch.Generator().manual_seed(2)) * 3).to(dtype)
    xf = x.float()
    s = (xf.abs().amax(1, keepdim=True) / 127).clamp(min=1e-12)
    xq = torch.round(xf / s).clamp(-127, 127).long()
    exact = ((xq @ layer.q.long().t()).float() * s * layer.scale.float()).to(dtype) + lin.bias
    y = layer(x)
    assert y.dtype == dtype
    assert torch.equal(y, exact)  # integer sums are exact: no tolerance
    for rows in (1, 2, 17, 299):  # and a row is the same bits at every pass size
        assert torch.equal(layer(x[-rows:]), y[-rows:]), rows
    assert isinstance(layer.select_rows(torch.tensor([5, 1]))[:1], W8A8Linear)
    assert torch.equal(layer.select_rows(torch.tensor([5, 1]))(x[:3]), y[:3, [5, 1]])


def test_int4_codes_keep_each_group_within_half_a_step():
    w = linear(128, 32).weight.detach()
    q, pairs = int4_codes(w, 32)
    assert q.min() == 0 and q.max() == 15
    scale, zero = pairs[..., 0].t().repeat_interleave(32, 1), pairs[..., 1].t().repeat_interleave(32, 1)
    deq = (q.float() - 8) * scale + zero
    assert ((deq - w).abs() <= scale / 2 + 1e-6).all()


@pytest.mark.parametrize("n_in,n_out,group,kernel", [
    (64, 1024, 32, True),    # the CPU int4 kernel
    (128, 48, 64, True),
    (64, 40, 32, False),     # 40 rows: not a multiple of 16, dequantized on the fly
])
def test_int4_matmul_kernel_and_fallback(n_in, n_out, group, kernel):
    lin = linear(n_in, n_out, seed=n_out)
    q = Int4Linear.from_linear(lin, group)
    assert isinstance(q, Int4Linear) and (q.packed is not None) == kernel
    for x in (torch.randn(3, n_in), torch.randn(40, n_in)):  # the kernel; a long pass (prefill)
        assert_matches(q(x), q, x)


def test_int4_falls_back_to_int8_when_groups_cannot_tile_the_input():
    lin = linear(48, 32)  # 48 inputs: no group of 32 tiles them
    q = Int4Linear.from_linear(lin, 32)
    assert isinstance(q, Int8Linear)
    x = torch.randn(2, 48)
    assert_matches(q(x), q, x)


@pytest.mark.parametrize("make", [
    lambda lin: Int8Linear.from_linear(lin),
    lambda lin: Int4Linear.from_linear(lin, 32),                           # kernel path
    lambda lin: Int4Linear.from_linear(linear(64, 1000, 3), 32),           # fallback
])
def test_ranked_rows_and_leading_slices(make):
    q = make(linear(64, 1024, seed=1))
    n = q.out_features
    ranking = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    ranked = q.select_rows(ranking)
    full = q.dequantize()
    x = torch.randn(4, 64)  # a short pass: the kernel where it fits
    bias = q.bias[ranking]
    for k in (1, 3, 16, 64, 65, 100, 640, n):
        cut = ranked[:k]
        xin = x.bfloat16() if on_kernel(cut, x) else x
        want = nn.functional.linear(xin.double(), full[ranking[:k]].double(), bias[:k].double())
        got = cut(x)
        assert got.shape == (4, k)
        tol = 2 ** -7 * want.abs().max().item() if on_kernel(cut, x) else 1e-4
        torch.testing.assert_close(got.double(), want, atol=tol, rtol=1e-4)


def test_quantize_model_swaps_every_linear_but_not_the_embedding():
    model = tiny_model("target")
    embed = model.get_input_embeddings().weight.clone()
    plain = CachedLM(tiny_model("target"))
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    lm = CachedLM(model)
    lm.quantize("int4")
    assert lm.quant == "int4" and isinstance(lm.head, QuantLinear)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == n_linear
    assert torch.equal(model.get_input_embeddings().weight, embed)
    assert lm.vocab_size == 1024 and lm.hidden_size == 64
    assert lm.read_params() == plain.read_params() and lm.read_params(100) == plain.read_params(100)
    ids = [5, 17, 230, 41]
    h_q, h_p = lm.forward(ids, 1), plain.forward(ids, 1)
    gap = (lm.logits(h_q) - plain.logits(h_p)).abs().max()
    assert 0 < gap < 0.5 * plain.logits(h_p).abs().max()  # other numbers, but near the originals


def test_bad_modes_are_refused():
    with pytest.raises(SpecScopeError, match="int8"):
        check_mode("int3", ("none", "int8"), "--quant")
    with pytest.raises(SpecScopeError):
        quantize_model(tiny_model("draft"), "fp8")
