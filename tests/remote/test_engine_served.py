"""`bench --reference URL`: a vLLM or SGLang server's own decoding read from the answers and
counters those engines document (no such server runs here: answers written in their shapes),
and a real llama-server running its own speculative decoding measured as a URL reference."""
import json

from typer.testing import CliRunner

from specscope.bench import engine_served as S
from specscope.cli.app import app
from specscope.remote.http import HttpClient
from specscope.remote.llama_server import LlamaServer
from tests.remote.conftest import SERVER_ARGS, needs_llama_server

METRICS = """# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} %d.0
vllm:spec_decode_num_drafts_created{engine="0",model_name="m"} 1.7e9
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} %d.0
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} %d.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="0"} %d.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} %d.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="2"} %d.0
vllm:num_requests_running{engine="0",model_name="m"} 0.0
"""


def test_vllm_counters_before_and_after_give_this_requests_acceptance():
    before = S.prometheus_counters(METRICS % (10, 30, 12, 7, 4, 1))
    # this request: 5 drafts of 3 tokens, accepted 4 + 2 + 1 = 7; 12 tokens in 12 - 7 = 5 steps
    after = S.prometheus_counters(METRICS % (15, 45, 19, 11, 6, 2))
    assert before[("vllm:spec_decode_num_drafts_total", None)] == 10  # _created not summed in
    answer = {"choices": [{"token_ids": [5, 6, 7, 2, 9], "finish_reason": "stop"}],
              "usage": {"completion_tokens": 12}}
    m = S.vllm_parse(answer, before, after, 1.0, eos={2})
    assert m.token_ids == [5, 6, 7, 2] and m.stop_reason == "eos"
    assert (m.drafted, m.accepted, m.steps) == (15, 7, 5)
    assert m.pos_drafted == [5, 5, 5] and m.pos_accepted == [4, 2, 1]


def test_sglang_verify_count_gives_tau():
    answer = {"output_ids": [4, 5, 6, 7, 8, 9], "meta_info": {
        "completion_tokens": 6, "spec_verify_ct": 2, "e2e_latency": 0.5,
        "finish_reason": {"type": "length", "length": 6}}}
    m = S.sglang_parse(answer, 0.6, eos={2})
    assert (m.steps, m.accepted, m.drafted) == (2, 4, None)  # tau 3; drafted not reported
    assert m.stop_reason == "max_new_tokens" and m.server_tokens_per_s == 12
    answer["meta_info"]["spec_draft_token_num"] = 8
    assert S.sglang_parse(answer, 0.6, eos={2}).drafted == 8
    plain = {"output_ids": [4, 2], "meta_info": {"completion_tokens": 2, "finish_reason": {"type": "stop"}}}
    m = S.sglang_parse(plain, 0.1, eos={2})
    assert (m.steps, m.accepted, m.stop_reason) == (2, 0, "eos")


@needs_llama_server
def test_a_llama_server_is_detected(tiny_server):
    assert S.detect_engine(HttpClient(tiny_server.url)) == "llama.cpp"


@needs_llama_server
def test_bench_reference_url_reads_the_servers_own_speculation(tiny_ggufs, tmp_path):
    """A llama-server running its own speculative decoding (the tiny drafter, 3 tokens a step),
    measured by `bench --reference URL` beside specscope's draft on the same (local) target."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"question_id": 0, "category": "coding", "turns": ["Write a sort."]}) + "\n")
    args = SERVER_ARGS + ["--spec-type", "draft-simple", "--spec-draft-n-max", "3",
                          "--spec-draft-n-min", "0", "--spec-draft-p-min", "0"]
    with LlamaServer(tiny_ggufs[0], draft=tiny_ggufs[1], args=args) as server:
        out = tmp_path / "out"
        r = CliRunner().invoke(app, ["bench", "--profile", "tiny-random", "--prompts", str(prompts),
                                     "-m", "draft", "-k", "3", "-n", "16", "--reference", server.url,
                                     "--out", str(out), "--no-plots", "--no-warmup"])
        assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    rows = {(x["config"], x["category"]): x for x in results["results"]}
    ref = rows[("server", "overall")]
    assert ref["mean_draft_len"] > 0 and ref["acceptance_rate"] is not None and ref["tau"] >= 1
    assert ref["identical_share"] == 1.0  # its greedy output is the local target's (float32 K/V)
    assert results["meta"]["engine_reference"] == {"reference": server.url, "engine": "llama.cpp"}
