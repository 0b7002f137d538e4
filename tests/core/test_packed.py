"""Float32 linears on oneDNN's packed weights (core/packed.py): the same products as F.linear up
to the order of the sums, every linear of a model swapped, the head's rows cut for VocabTrim,
and speculative decoding over packed models still giving the packed target's own output, for
model drafters, trees, trimmed rows and the MTP head (chain and tree, with context rows)."""
import pytest
import torch
from torch import nn

from specscope.core.drafters.base import NoDrafter
from specscope.core.drafters.jacobi import CausalRefiner, JacobiDrafter
from specscope.core.drafters.model import ModelDrafter, RankedHead
from specscope.core.drafters.mtp import MTPDrafter
from specscope.core.drafters.mtp_tree import MTPTreeDrafter
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.engine import SpecDecoder
from specscope.core.lm import CachedLM
from specscope.core.packed import PackedLinear, pack_available, pack_model
from specscope.core.tiny import tiny_model
from tests.core.helpers import IdTokenizer, run
from tests.core.test_mtp_drafter import artifact_for, greedy, trained_head

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN")


def test_products_match_f_linear_for_any_number_of_rows():
    torch.manual_seed(0)
    for bias in (True, False):
        lin = nn.Linear(96, 200, bias=bias)
        packed = PackedLinear.from_linear(lin)
        for shape in [(1, 96), (2, 96), (3, 96), (5, 96), (9, 96), (40, 96), (1, 7, 96)]:
            x = torch.randn(shape)
            y = packed(x)
            want = nn.functional.linear(x.double(), lin.weight.double(),
                                        None if lin.bias is None else lin.bias.double())
            assert y.shape == want.shape and y.dtype == torch.float32
            torch.testing.assert_close(y.double(), want, atol=1e-5, rtol=1e-5)
        assert torch.equal(packed.weight, lin.weight.detach())  # unpacks to the same numbers
        assert packed.weight_count() == sum(p.numel() for p in lin.parameters())


def test_rows_cut_from_a_packed_head():
    torch.manual_seed(1)
    lin = nn.Linear(64, 300)
    head = PackedLinear.from_linear(lin, keep_dense=True)
    ranking = torch.randperm(300)
    ranked = head.select_rows(ranking)
    x = torch.randn(4, 64)
    for k in (1, 17, 300):
        want = nn.functional.linear(x, lin.weight[ranking[:k]], lin.bias[ranking[:k]])
        torch.testing.assert_close(ranked[:k](x), want, atol=1e-5, rtol=1e-5)


def test_pack_model_swaps_every_float32_linear_on_a_cpu(monkeypatch):
    model = tiny_model("target")
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    plain = CachedLM(tiny_model("target"))
    lm = CachedLM(model)
    lm.quantize("none")  # float32 on a CPU: packs
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert sum(isinstance(m, PackedLinear) for m in model.modules()) == n_linear
    assert isinstance(lm.head, PackedLinear)
    assert lm.head.dense is model.get_input_embeddings().weight  # tied: no second plain copy
    assert lm.read_params() == plain.read_params() and lm.read_params(100) == plain.read_params(100)
    ids = [5, 17, 230, 41, 9, 9]
    torch.testing.assert_close(lm.logits(lm.forward(ids, 3)), plain.logits(plain.forward(ids, 3)),
                               atol=1e-4, rtol=1e-4)
    lm.check_logits()
    # bfloat16, or packing turned off: nothing is swapped
    assert pack_model(tiny_model("target").to(torch.bfloat16)) == 0
    monkeypatch.setenv("SPECSCOPE_PACK", "0")
    assert not pack_available(torch.float32, torch.device("cpu"))
    assert pack_model(tiny_model("target")) == 0


def packed_decoder(seed=0, ranking=None, k=None):
    """Target, drafter and MTP head all packed; the MTP head built (and trained) unpacked first."""
    target_model = tiny_model("target", seed)
    art = artifact_for(target_model, trained_head(seed), ranking=ranking, k=k)
    target, draft = CachedLM(target_model), CachedLM(tiny_model("draft", seed))
    target.quantize("none")
    draft.quantize("none")
    assert pack_model(art.head) > 0
    ranked = None if ranking is None else RankedHead(draft, ranking, k)

    def model_drafter():
        return ModelDrafter(draft, target.vocab_size, ranked)

    factories = {
        "ar": NoDrafter,
        "draft": model_drafter,
        "tree": lambda: TreeDrafter(model_drafter()),
        "pool": lambda: PoolDrafter(model_drafter()),
        "jacobi": lambda: JacobiDrafter(CausalRefiner(model_drafter())),
        "mtp": lambda: MTPDrafter(target, art),
        "mtp-tree": lambda: MTPTreeDrafter(target, art),
    }
    return SpecDecoder(target, IdTokenizer(), factories, set())


@pytest.mark.parametrize("trimmed", [False, True])
def test_greedy_output_over_packed_models_is_the_packed_targets_own(trimmed):
    prompts = [[5, 17, 300, 41, 9], [88, 2, 640, 7]]
    ranking = None
    if trimmed:  # the answers' tokens among the first 100 ranked rows, as a calibrated ranking has
        model = tiny_model("target")
        seen = list(dict.fromkeys(t for p in prompts for t in greedy(model, p, 30)))
        rest = [t for t in torch.randperm(1024, generator=torch.Generator().manual_seed(4)).tolist()
                if t not in seen]
        ranking = torch.tensor(seen + rest)
    decoder = packed_decoder(ranking=ranking, k=100 if trimmed else None)
    deep = set()
    for prompt in prompts:
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=30)
        for method in ("draft", "tree", "pool", "jacobi", "mtp", "mtp-tree"):
            _, spec = run(decoder, prompt, method=method, draft_len=4, max_new_tokens=30)
            assert spec.token_ids == plain.token_ids, (method, prompt)
            assert spec.steps < plain.steps or method == "jacobi", method
            if len(spec.per_position) > 2 and spec.per_position[2] > 0:
                deep.add(method)
    assert {"draft", "mtp"} <= deep  # third drafted tokens were accepted: the test reaches depth
    # and the packed target is the model's own greedy decoding, to its own float32 numbers
    assert list(plain.token_ids) == greedy(decoder.target.model, prompts[-1], 30)[len(prompts[-1]):]
