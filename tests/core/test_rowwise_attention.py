"""Under w8a8 the target's attention computes each row as a one-row pass would (rowwise_attention):
bitwise, so 8-bit rounding cannot turn last-bit differences between pass sizes into steps."""
import torch

from specscope.core.lm import CachedLM
from specscope.core.tiny import tiny_model


def row_differences(lm: CachedLM) -> int:
    """At 4 context lengths: does a position's hidden state in a 6-row pass differ (any bit)
    from the same position's in a 1-row pass?"""
    ids = torch.randint(0, lm.vocab_size, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    bad = 0
    for ctx in (20, 77, 150, 250):
        lm.reset()
        lm.prefill(ids[:ctx])
        one = lm.forward(ids[:ctx + 1], n_last=1)
        six = lm.forward(ids[:ctx + 6], n_last=6)
        bad += not torch.equal(one[0], six[0])
    return bad


def test_a_w8a8_targets_rows_do_not_depend_on_the_pass_size():
    lm = CachedLM(tiny_model("target"), check=False)
    lm.quantize("w8a8")
    assert lm.config._attn_implementation == "specscope_rowwise"
    assert row_differences(lm) == 0
    lm.model.config._attn_implementation = "sdpa"  # the control: transformers' attention
    assert row_differences(lm) > 0  # differs, so the check above can fail


def test_other_formats_keep_transformers_attention():
    lm = CachedLM(tiny_model("target"), check=False)
    lm.quantize("int8")
    assert lm.config._attn_implementation != "specscope_rowwise"


def test_batched_left_padded_greedy_on_a_w8a8_target_is_each_prompts_own():
    # trim and self-distillation read the target's answers in left-padded batches: padded rows
    # see no keys at first, and a prompt's rows must not depend on its batch neighbours
    from specscope.core.greedy import generate_answers
    from specscope.core.quant import quantize_model

    model = tiny_model("target")
    quantize_model(model, "w8a8")
    prompts = [[5, 17, 230, 41], [900, 3, 3, 3, 77, 12, 640, 11, 2]]
    both = generate_answers(model, prompts, 12, set(), 0)
    assert both == [generate_answers(model, [p], 12, set(), 0)[0] for p in prompts]
