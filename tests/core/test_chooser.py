"""The chooser is a pure function of measured costs: fixed tables in, a choice out."""
from specscope.core.chooser import Costs, choose, expected_tokens

ROWS = (1, 2, 4, 8, 16)


def curve(one: float, ratios: tuple[float, ...], prefill_tps: float = 100.0) -> Costs:
    return Costs({r: one * x for r, x in zip(ROWS, ratios)}, prefill_tps)


FLAT = (1.0, 1.02, 1.05, 1.12, 1.4)  # memory-bound: verifying 8 tokens costs about one pass
STEEP = (1.0, 1.6, 2.2, 3.9, 7.6)  # compute-bound: each token costs most of a pass


def token(seconds: float) -> Costs:
    return Costs({1: seconds}, 500.0)


def test_expected_tokens_is_one_plus_the_chance_of_each_prefix():
    assert expected_tokens(0.5, 3) == 1 + 0.5 + 0.25 + 0.125
    assert expected_tokens([1.0, 0.0], 3) == 2.0


def test_bfloat16_where_its_verify_curve_is_flat():
    """An AVX-512 BF16 machine: bfloat16 reads half the bytes and verifies for almost free."""
    target = {("float32", "none"): curve(0.20, FLAT), ("bfloat16", "none"): curve(0.11, FLAT)}
    drafter = {("float32", "none"): token(0.06), ("bfloat16", "none"): token(0.035)}
    c = choose(target, drafter)
    assert (c.dtype, c.method) == ("bfloat16", "draft") and c.draft_len >= 2


def test_float32_where_bfloat16_verification_is_compute_bound():
    """An AVX2-only machine: bfloat16 decodes a token about as fast, but a pass over several
    tokens costs several passes and its prompt reading is slow: float32 wins."""
    target = {("float32", "none"): curve(0.28, FLAT, 150.0), ("bfloat16", "none"): curve(0.23, STEEP, 7.0)}
    drafter = {("float32", "none"): token(0.10), ("bfloat16", "none"): token(0.09)}
    c = choose(target, drafter)
    assert (c.dtype, c.method) == ("float32", "draft")
    assert "compute-bound" in c.reason


def test_no_quantized_drafter_where_its_token_costs_more_than_a_pass():
    target = {("bfloat16", "none"): curve(0.23, FLAT)}
    drafter = {("bfloat16", "none"): token(0.08), ("bfloat16", "int4"): token(0.42),
               ("bfloat16", "int8"): token(0.30)}
    c = choose(target, drafter)
    assert (c.method, c.draft_quant) == ("draft", "none")
    assert "int4 drafted token costs 1.83 target passes" in c.reason


def test_the_cheapest_drafter_weights_where_they_are_cheap():
    target = {("bfloat16", "none"): curve(0.11, FLAT)}
    drafter = {("bfloat16", "none"): token(0.035), ("bfloat16", "int4"): token(0.02)}
    assert choose(target, drafter).draft_quant == "int4"


def test_plain_decoding_when_nothing_pays():
    target = {("float32", "none"): curve(0.2, STEEP), ("bfloat16", "none"): curve(0.25, STEEP)}
    drafter = {("float32", "none"): token(0.2), ("bfloat16", "none"): token(0.22)}
    c = choose(target, drafter)
    assert (c.dtype, c.method, c.draft_len) == ("float32", "ar", 0)
    assert "no drafter pays" in c.reason


def test_an_explicit_value_always_wins():
    target = {("float32", "none"): curve(0.20, FLAT), ("bfloat16", "none"): curve(0.11, FLAT)}
    drafter = {("float32", "none"): token(0.06), ("bfloat16", "none"): token(0.035),
               ("float32", "int4"): token(0.03)}
    assert choose(target, drafter, dtypes=["float32"]).dtype == "float32"
    assert choose(target, drafter, dtypes=["float32"], draft_quants=["none"]).draft_quant == "none"
    assert choose(target, drafter, methods=["ar"]).method == "ar"


def test_the_target_weights_are_never_chosen_only_given():
    target = {("bfloat16", "none"): curve(0.11, FLAT), ("bfloat16", "int8"): curve(0.05, FLAT)}
    drafter = {("bfloat16", "none"): token(0.035)}
    assert all(o.dtype == "bfloat16" for o in choose(target, drafter).ranked)
    assert choose(target, drafter).predicted.decode_tokens_per_s < 1 / 0.05  # the none row's
    assert choose(target, drafter, quant="int8").predicted.decode_tokens_per_s > 1 / 0.06


def test_a_trained_head_is_chosen_when_its_acceptance_pays_more():
    target = {("bfloat16", "none"): curve(0.11, FLAT)}
    drafter = {("bfloat16", "none"): token(0.035)}
    c = choose(target, drafter, methods=["ar", "draft", "mtp-tree"],
               acceptance={"mtp-tree": [0.6, 0.4, 0.3]}, mtp_token_ratio=0.05)
    weak = choose(target, drafter, methods=["ar", "draft", "mtp-tree"],
                  acceptance={"mtp-tree": [0.2, 0.05, 0.01]}, mtp_token_ratio=0.05)
    assert weak.method == "draft"
    assert c.method == "mtp-tree"


def test_a_trained_head_is_chosen_where_its_costs_say_it_is_fastest():
    """`method: auto` with a FastMTP head: its held-apart acceptance and its drafted token's
    cost (a fraction of a target pass) against the drafter's."""
    target = {("bfloat16", "none"): curve(0.10, FLAT)}
    drafter = {("bfloat16", "none"): token(0.035)}
    good = choose(target, drafter, methods=["ar", "draft", "mtp"],
                  acceptance={"mtp": [0.8, 0.7, 0.6]}, mtp_token_ratio=0.05)
    assert (good.method, good.dtype) == ("mtp", "bfloat16") and "mtp" in good.reason
    weak = choose(target, drafter, methods=["ar", "draft", "mtp"],
                  acceptance={"mtp": [0.2, 0.05, 0.0]}, mtp_token_ratio=0.05)
    assert weak.method == "draft"


def test_the_last_bench_on_this_machine_wins_over_the_prediction():
    """Measured speedups (the last `bench` here) replace the predictions: mtp-tree, which the
    chain model cannot predict, is chosen when it measured fastest, and said so."""
    target = {("bfloat16", "none"): curve(0.10, FLAT)}
    drafter = {("bfloat16", "none"): token(0.035)}
    head = {"mtp": [0.5, 0.2, 0.1]}
    methods = ["ar", "draft", "mtp", "mtp-tree"]
    predicted = choose(target, drafter, methods=methods, acceptance=head, mtp_token_ratio=0.05)
    assert predicted.method != "mtp-tree"  # not predicted: only measured
    measured = {("bfloat16", "draft:none"): 1.72, ("bfloat16", "mtp-tree"): 1.80,
                ("bfloat16", "mtp"): 1.50, ("float32", "mtp-tree"): 3.0}
    c = choose(target, drafter, methods=methods, acceptance=head, mtp_token_ratio=0.05,
               measured=measured)
    assert (c.method, c.dtype) == ("mtp-tree", "bfloat16")
    assert "measured 1.80x plain by the last bench" in c.reason
    slower = {**measured, ("bfloat16", "mtp-tree"): 1.60}
    assert choose(target, drafter, methods=methods, acceptance=head, mtp_token_ratio=0.05,
                  measured=slower).method == "draft"


# ---- the backend: llama.cpp's GGUF formats come in as dtype "gguf" (auto.choose_for) ----------
# This 2-core AVX2 CPU as measured (issue 30): llama.cpp's 4-bit target decodes at 20 tok/s but
# a pass over 2, 4, 8, 16 tokens costs 1.9, 2.1, 4.7, 8 one-token passes (compute-bound); its
# 0.5B Q8_0 drafter's token costs 0.6 of that pass. torch float32 decodes at 3.5 tok/s, flat.
LLAMA_STEEP = (1.0, 1.9, 2.05, 4.7, 8.0)


def test_llamacpp_plain_where_it_decodes_fastest_and_its_verification_is_compute_bound():
    target = {("float32", "none"): curve(0.28, FLAT, 150.0), ("gguf", "none"): curve(0.05, LLAMA_STEEP, 120.0)}
    drafter = {("float32", "none"): token(0.10), ("gguf", "q8_0"): token(0.03)}
    c = choose(target, drafter, logits_only=("gguf",))
    assert (c.dtype, c.method) == ("gguf", "ar")
    assert c.reason.startswith("llama.cpp, ar") and "float32 passes are 5.6x slower" in c.reason
    draft = [o for o in c.ranked if (o.dtype, o.method) == ("gguf", "draft")]
    assert draft and draft[0].speedup < 1.0  # its own speculation would lose here, as measured


def test_llamacpp_speculates_where_its_verification_is_memory_bound():
    target = {("float32", "none"): curve(0.28, FLAT, 150.0), ("gguf", "none"): curve(0.05, FLAT, 120.0)}
    drafter = {("float32", "none"): token(0.10), ("gguf", "q8_0"): token(0.01)}
    c = choose(target, drafter, logits_only=("gguf",))
    assert (c.dtype, c.draft_quant, c.method) == ("gguf", "q8_0", "draft") and c.draft_len >= 2
    assert c.reason.startswith("llama.cpp, drafter q8_0, draft")


def test_torch_where_llamacpp_decodes_faster_but_cannot_verify_cheaply():
    target = {("bfloat16", "none"): curve(0.06, FLAT, 300.0), ("gguf", "none"): curve(0.05, LLAMA_STEEP, 300.0)}
    drafter = {("bfloat16", "none"): token(0.006), ("gguf", "q8_0"): token(0.03)}
    c = choose(target, drafter, logits_only=("gguf",))
    assert (c.dtype, c.method) == ("bfloat16", "draft")
    assert "llama.cpp decodes faster (20.0 against 16.7 tok/s) but its verification is compute-bound" in c.reason


def test_no_fastmtp_head_on_a_backend_that_returns_logits_only():
    """A head with high acceptance would win on llama.cpp's cheap pass, but llama.cpp gives no
    hidden states: mtp is considered on torch only, predicted or measured."""
    target = {("float32", "none"): curve(0.28, FLAT), ("gguf", "none"): curve(0.05, FLAT)}
    head = {"mtp": [0.9, 0.8, 0.7]}
    methods = ["ar", "mtp", "mtp-tree"]
    c = choose(target, None, methods=methods, acceptance=head, mtp_token_ratio=0.05,
               measured={("gguf", "mtp-tree"): 3.0}, logits_only=("gguf",))
    assert not [o for o in c.ranked if o.dtype == "gguf" and o.method != "ar"]
    assert (c.dtype, c.method) == ("gguf", "ar")
    unguarded = choose(target, None, methods=methods, acceptance=head, mtp_token_ratio=0.05)
    assert (unguarded.dtype, unguarded.method) == ("gguf", "mtp")  # the guard is what stops it
