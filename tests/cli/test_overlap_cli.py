"""--overlap / --draft-threads / --draft-device through generate and bench on the tiny-random
profile (the drafter in its own worker process), and every bad input."""
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines

SAMPLE = str(Path(__file__).resolve().parent.parent / "data" / "spec_bench_sample.jsonl")
runner = CliRunner()


@pytest.fixture(autouse=True)
def keep_threads():
    """A worker session gives the target this process's share of the cores: restore it."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def gen(*args):
    return runner.invoke(app, ["generate", "def quicksort(arr):", "-p", "tiny-random", "-n", "24",
                               "--json", *args])


@pytest.mark.parametrize("method", ["draft", "tree", "pool", "jacobi"])
def test_overlapped_generate_is_plain_decoding_with_its_timeline(method):
    plain = json_lines(gen("-m", "ar").stdout)[-1]
    r = gen("-m", method, "-k", "3", "--overlap", "--draft-threads", "1")
    assert r.exit_code == 0, r.output
    events = json_lines(r.stdout)
    summary = events[-1]
    assert summary["token_ids"] == plain["token_ids"]
    assert summary["overlapped"] and summary["predrafted"] == summary["reused"] + summary["discarded"]
    drafted = [e for e in events if e["kind"] == "drafted"]
    timelines = [e for e in events if e["kind"] == "timeline"]
    assert [t["step"] for t in timelines] == [d["step"] for d in drafted]
    # every proposal the worker made says where it came from (a step with no room drafts nothing)
    assert all(d["overlap"]["branch"] in ("first", "main", "hedge", "") for d in drafted if d["tokens"])
    assert drafted[0]["overlap"]["branch"] == "first" and timelines[0]["branch"] == "first"


def test_serial_through_the_worker_drafts_nothing_ahead():
    r = gen("-m", "draft", "-k", "3", "--draft-threads", "1")
    assert r.exit_code == 0, r.output
    events = json_lines(r.stdout)
    timelines = [e for e in events if e["kind"] == "timeline"]
    assert not events[-1]["overlapped"] and timelines  # who waited: the target, while drafting
    assert all(t["ahead_s"] == 0 and t["predrafted"] == 0 for t in timelines)


@pytest.mark.parametrize("args,needle", [
    (["-m", "lookup", "--overlap"], "drafts ahead for draft, tree, pool, jacobi"),
    (["-m", "layerskip", "--overlap"], "drafts ahead for draft, tree, pool, jacobi"),
    (["--draft-threads", "4096"], "the target needs at least one"),
    (["--draft-device", "tpu"], "tpu"),
    (["--overlap", "--backend", "llama.cpp"], "runs torch models"),
])
def test_bad_worker_options_are_one_line(args, needle):
    assert_clean_error(gen(*args), needle)


def test_bench_rows_say_serial_or_overlapped(tmp_path):
    out = tmp_path / "o"
    r = runner.invoke(app, ["bench", "-p", "tiny-random", "--prompts", SAMPLE, "--categories",
                            "coding", "--limit", "1", "-n", "12", "-m", "draft", "-k", "3",
                            "--overlap", "--draft-threads", "1", "--no-plots", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    rows = {row["config"]: row for row in data["results"] if row["category"] == "overall"}
    assert set(rows) == {"ar", "draft k=3", "draft k=3 overlapped"}
    assert rows["draft k=3"]["drafting"] == "serial"
    ahead = rows["draft k=3 overlapped"]
    assert ahead["drafting"] == "overlapped" and ahead["identical_share"] == 1.0
    assert ahead["predrafted"] == ahead["reused"] + ahead["discarded"]
    assert 0 <= ahead["target_idle_share"] <= 1 and 0 <= ahead["draft_idle_share"] <= 1
    assert "drafter worker: 1 thread" in data["meta"]["drafting"]
    assert "overlapped: idle target" in r.stdout
