"""`auto` profile values and `specscope doctor`, end to end on the tiny pair (measured for real,
once for the module, in a cache of its own)."""
import json

import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines, write

runner = CliRunner()
AUTO = ("target: tiny-random:target\ndrafter: tiny-random:draft\ndtype: auto\nmethod: auto\n"
        "draft_quant: auto\ndraft_len: auto\nmax_new_tokens: 16\n")


@pytest.fixture(scope="module")
def machine_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("machine-cache")


@pytest.fixture
def auto_profile(tmp_path, machine_cache, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(machine_cache))
    return write(tmp_path, "auto.yaml", AUTO)


def summary(result):
    assert result.exit_code == 0, result.output
    return json_lines(result.stdout)[-1]


def test_generate_chooses_says_why_and_runs_what_it_chose(auto_profile):
    s = summary(runner.invoke(app, ["generate", "def f(x):", "-p", auto_profile, "-n", "8", "--json"]))
    auto = s["auto"]
    assert auto["dtype"] in ("float32", "bfloat16") and auto["method"] in ("ar", "draft")
    assert auto["reason"] and auto["predicted_tokens_per_s"] > 0
    assert (s["dtype"], s["draft_quant"]) == (auto["dtype"], auto["draft_quant"] if auto["method"] == "draft" else "none")
    r = runner.invoke(app, ["generate", "def f(x):", "-p", auto_profile, "-n", "4"])
    assert r.exit_code == 0 and "auto: " in r.stderr


def test_an_explicit_value_wins(auto_profile):
    s = summary(runner.invoke(app, ["generate", "def f(x):", "-p", auto_profile, "-n", "4", "--json",
                                    "--dtype", "float32", "--draft-quant", "int8"]))
    assert (s["dtype"], s["auto"]["dtype"]) == ("float32", "float32")
    assert s["auto"]["draft_quant"] == "int8" or s["auto"]["method"] == "ar"
    s = summary(runner.invoke(app, ["generate", "def f(x):", "-p", auto_profile, "-n", "4", "--json",
                                    "--dtype", "float32", "--draft-quant", "int8", "--method", "draft"]))
    assert (s["dtype"], s["draft_quant"], s["auto"]) == ("float32", "int8", None)  # nothing left open


def test_a_profile_without_auto_measures_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "empty"))
    s = summary(runner.invoke(app, ["generate", "x", "-p", "tiny-random", "-n", "4", "--json"]))
    assert s["auto"] is None and not (tmp_path / "empty" / "machine").exists()


def test_doctor_prints_the_table_and_the_choice(auto_profile):
    r = runner.invoke(app, ["doctor", "-p", auto_profile])
    assert r.exit_code == 0, r.output
    for needle in ("instruction sets", "16 tok", "a drafted token", "auto chooses"):
        assert needle in r.stdout
    data = json.loads(runner.invoke(app, ["doctor", "-p", auto_profile, "--json"]).stdout)
    assert data["choice"]["reason"] and data["machine"]["info"]["threads"] >= 1
    assert any("bfloat16/none" in m for m in data["machine"]["models"].values())


def test_bad_auto_values_get_one_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "target: tiny-random:target\nmethod: fastest\n")
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", path]), "bad.yaml", "method")
    path = write(tmp_path, "bad2.yaml", "target: tiny-random:target\ndtype: automatic\n")
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", path]), "bad2.yaml", "dtype")


def test_auto_on_the_command_line_for_a_profile_that_pins_its_values(tmp_path, machine_cache, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(machine_cache))
    s = summary(runner.invoke(app, ["generate", "x", "-p", "tiny-random", "-n", "4", "--json",
                                    "--dtype", "auto", "--draft-quant", "auto"]))
    assert s["dtype"] in ("float32", "bfloat16") and s["auto"]["dtype"] == s["dtype"]
    assert s["draft_quant"] in ("none", "int8", "int4")


def test_with_a_head_auto_picks_the_method_the_last_bench_measured_fastest(tmp_path, machine_cache,
                                                                           monkeypatch):
    """`method: auto` once the profile has a FastMTP head and a bench ran here: the method the
    bench measured fastest (mtp-tree among them) is chosen, and the `auto:` line says so."""
    from specscope.core import last_bench

    monkeypatch.setenv("SPECSCOPE_CACHE", str(machine_cache))
    # only the method open: every option the chooser weighs is one the bench measures
    path = write(tmp_path, "headed.yaml", "target: tiny-random:target\ndrafter: tiny-random:draft\n"
                 "dtype: float32\nmethod: auto\ndraft_quant: none\nmax_new_tokens: 16\n")
    r = runner.invoke(app, ["mtp", "train", "-p", path, "--limit", "1", "--held", "1", "--samples", "1",
                            "--max-new-tokens", "8", "--tokens", "100"])
    assert r.exit_code == 0, r.output
    s = summary(runner.invoke(app, ["generate", "def f(x):", "-p", path, "-n", "8", "--json"]))
    assert s["auto"]["method"] in ("ar", "draft", "mtp")  # predicted: mtp-tree is never predicted
    r = runner.invoke(app, ["bench", "-p", path, "-m", "draft,mtp,mtp-tree", "--limit", "1",
                            "--categories", "coding,writing", "-n", "16", "--no-warmup",
                            "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    from specscope.profiles import load_profile
    from specscope.session import mtp_head

    measured = last_bench.load("headed", mtp_head(load_profile(path)))
    assert {m for _, m in measured} >= {"mtp", "mtp-tree"}
    s = summary(runner.invoke(app, ["generate", "def f(x):", "-p", path, "-n", "8", "--json"]))
    dtype = s["auto"]["dtype"]
    mine = {m.split(":")[0]: v for (d, m), v in measured.items() if d == dtype}
    fastest = max(mine, key=mine.get)
    assert s["auto"]["method"] == (fastest if mine[fastest] >= 1.05 else "ar"), (mine, s["auto"])
    if s["auto"]["method"] != "ar":
        assert "by the last bench here" in s["auto"]["reason"]
