"""`backend: auto` / `--backend auto`: the backend and method measured fastest on this machine
(core/machine.py's costs, llama.cpp's measured on the GGUF files themselves), said in the
`auto:` line; torch, silently, where llama-cpp-python is not installed. Fixed costs in the
machine cache, the choice out; and one real measurement of the tiny pair on llama.cpp."""
import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import json_lines, write
from tests.core.llamacpp_helpers import need_binding

need_binding()

runner = CliRunner()
ROWS = (1, 2, 4, 8, 16)
AUTO = ("target: tiny-random:target\ndrafter: tiny-random:draft\ndtype: auto\nmethod: auto\n"
        "draft_quant: auto\ndraft_len: 3\nbackend: auto\nmax_new_tokens: 128\n")
FLAT = (1.0, 1.02, 1.05, 1.12, 1.4)
STEEP = (1.0, 1.9, 2.05, 4.7, 8.0)  # llama.cpp's 4-bit target on this AVX2 CPU (issue 30)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fixed_costs(torch_pass: float, llama_pass: float, llama_curve=STEEP, llama_draft: float = 0.6):
    """This machine's report with fixed pass costs (seconds) for the tiny pair: torch float32
    and bfloat16 with a flat verify curve and a drafter at 0.2 of a pass, llama.cpp's f32 GGUF
    files with `llama_curve` and a drafter at `llama_draft` of its pass."""
    from specscope.core.chooser import Costs
    from specscope.core.machine import MachineReport, machine_info, save_report, shape_key
    from specscope.core.tiny import tiny_config

    def curve(one, ratios):
        return Costs({r: one * x for r, x in zip(ROWS, ratios)}, 500.0)

    target = {"float32/none": curve(torch_pass, FLAT), "bfloat16/none": curve(2 * torch_pass, STEEP),
              "gguf/f32": curve(llama_pass, llama_curve)}
    drafter = {"float32/none": Costs({1: 0.2 * torch_pass}, 900.0),
               "bfloat16/none": Costs({1: 0.4 * torch_pass}, 900.0),
               "gguf/f32": Costs({1: llama_draft * llama_pass}, 900.0)}
    save_report(MachineReport(machine_info(), 10.0, {shape_key(tiny_config("target")): target,
                                                     shape_key(tiny_config("draft")): drafter}))


def generate(profile, *args):
    r = runner.invoke(app, ["generate", "def f(x):", "-p", profile, "-n", "8", *args])
    assert r.exit_code == 0, r.output
    return r


def test_llamacpp_plain_where_it_measured_fastest_and_its_verification_is_compute_bound(cache, tmp_path):
    fixed_costs(torch_pass=0.28, llama_pass=0.05)
    profile = write(tmp_path, "auto.yaml", AUTO)
    s = json_lines(generate(profile, "--json").stdout)[-1]
    assert (s["backend"], s["dtype"], s["drafted"]) == ("llama.cpp", "gguf", 0)  # plain ran
    assert (s["auto"]["backend"], s["auto"]["method"]) == ("llama.cpp", "ar")
    assert s["auto"]["reason"].startswith("llama.cpp, ar")
    said = generate(profile).stderr
    assert "auto: llama.cpp, ar" in said and "float32 passes are 5.6x slower" in said


def test_llamacpp_speculates_where_its_verification_is_flat(cache, tmp_path):
    fixed_costs(torch_pass=0.28, llama_pass=0.05, llama_curve=FLAT, llama_draft=0.1)
    s = json_lines(generate(write(tmp_path, "auto.yaml", AUTO), "--json").stdout)[-1]
    assert (s["backend"], s["auto"]["method"], s["auto"]["draft_quant"]) == ("llama.cpp", "draft", "f32")
    assert s["draft_quant"] == "f32" and s["drafted"] > 0  # what ran: the drafter's GGUF as stored


def test_torch_where_torch_measured_fastest(cache, tmp_path):
    fixed_costs(torch_pass=0.05, llama_pass=0.06)
    s = json_lines(generate(write(tmp_path, "auto.yaml", AUTO), "--json").stdout)[-1]
    assert (s["backend"], s["dtype"], s["auto"]["backend"]) == ("torch", "float32", "torch")
    assert s["auto"]["method"] == "draft" and s["drafted"] > 0  # flat verification, a cheap drafter


def test_the_command_line_and_pinned_values_decide_what_is_open(cache, tmp_path):
    fixed_costs(torch_pass=0.28, llama_pass=0.05)
    pinned = write(tmp_path, "pinned.yaml", "target: tiny-random:target\ndrafter: tiny-random:draft\n"
                   "dtype: float32\n")
    s = json_lines(generate(pinned, "--backend", "auto", "--json").stdout)[-1]
    assert (s["backend"], s["dtype"]) == ("torch", "float32")  # a dtype only torch gives
    auto = write(tmp_path, "auto.yaml", AUTO)
    s = json_lines(generate(auto, "--backend", "torch", "--json").stdout)[-1]
    assert (s["backend"], s["auto"]["backend"]) == ("torch", "torch")
    s = json_lines(generate(auto, "-m", "layerskip", "--json").stdout)[-1]
    assert s["backend"] == "torch"  # a method that reads hidden states: torch
    # method auto on llama.cpp itself: chosen from llama.cpp's own costs (plain here)
    s = json_lines(generate(auto, "--backend", "llama.cpp", "--json").stdout)[-1]
    assert (s["backend"], s["drafted"], s["auto"]["backend"]) == ("llama.cpp", 0, "llama.cpp")


def test_without_the_binding_auto_means_torch_silently(cache, tmp_path, monkeypatch):
    import sys

    import specscope.core.llamacpp as backend

    fixed_costs(torch_pass=0.28, llama_pass=0.05)  # llama.cpp would win, were it installed
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setattr(backend, "_log_hook", None)
    profile = write(tmp_path, "auto.yaml", AUTO)
    r = generate(profile)
    assert "llama" not in r.stderr.lower()
    s = json_lines(generate(profile, "--json").stdout)[-1]
    assert (s["backend"], s["auto"]["backend"]) == ("torch", "torch")


def test_llamacpp_is_measured_for_real_on_the_gguf_files(cache, tmp_path):
    """No costs cached: auto measures the torch formats (proxies) and the GGUF files on
    llama.cpp (the models themselves), files them as gguf/TYPE, and doctor shows them."""
    from dataclasses import replace

    from specscope.auto import machine_report
    from specscope.core.tiny import tiny_config
    from specscope.profiles import load_profile

    profile = load_profile(write(tmp_path, "auto.yaml", AUTO))
    report = machine_report(profile)
    target, drafter = report.costs(tiny_config("target")), report.costs(tiny_config("draft"))
    assert set(target[("gguf", "f32")].passes) == set(ROWS) and ("float32", "none") in target
    assert set(drafter[("gguf", "f32")].passes) == {1}
    assert all(t > 0 for t in target[("gguf", "f32")].passes.values())
    torch_only = machine_report(replace(profile, backend="torch"))
    assert torch_only.models == report.models  # nothing measured again
    r = runner.invoke(app, ["doctor", "-p", str(profile.path)])
    assert r.exit_code == 0, r.output
    assert "llama.cpp f32" in r.stdout


def test_the_last_bench_on_llamacpp_wins_over_the_prediction(cache, tmp_path):
    """A bench on llama.cpp files its speedups under the format "gguf" with the drafter's GGUF
    type: the next auto choice takes them over the cost model's prediction, and says so."""
    from specscope.core import last_bench

    fixed_costs(torch_pass=0.28, llama_pass=0.05)  # predicted: llama.cpp plain
    profile = write(tmp_path, "auto.yaml", AUTO)
    rows = [{"category": "overall", "kind": "ours", "method": "draft", "speedup": 1.6},
            {"category": "overall", "kind": "ours", "method": "ar", "speedup": 1.0}]
    last_bench.save("auto", "gguf", "f32", rows, None)
    s = json_lines(generate(profile, "--json").stdout)[-1]
    assert (s["backend"], s["auto"]["method"], s["auto"]["draft_quant"]) == ("llama.cpp", "draft", "f32")
    assert "measured 1.60x plain by the last bench here" in s["auto"]["reason"]


def test_commands_that_choose_nothing_first_load_torch(cache, tmp_path):
    """lesson, trim and layerskip-search load through load_session without resolving auto
    first; they use torch's modules, so backend auto there is torch even where llama.cpp wins."""
    from specscope.profiles import load_profile
    from specscope.session import load_session

    fixed_costs(torch_pass=0.28, llama_pass=0.05)
    session = load_session(load_profile(write(tmp_path, "auto.yaml", AUTO)))
    assert session.profile.backend == "torch" and session.profile.dtype in ("float32", "bfloat16")
