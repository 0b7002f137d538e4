"""`mtp train` under `dtype: auto`: the dtype where a batch of answers runs fastest on this
machine (auto.training_dtype), said in a line where it is not the one generate runs in; fixed
costs in the machine cache, the choice out."""
import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import write

runner = CliRunner()
ROWS = (1, 2, 4, 8, 16)
PROFILE = "target: tiny-random:target\ndtype: auto\nmax_new_tokens: 64\nchat_template: true\n"
TRAIN = ["mtp", "train", "--limit", "1", "--held", "2", "--max-new-tokens", "6", "--tokens", "100",
         "--samples", "1"]
# (one-row pass s, sixteen-row pass s, prompt tokens a second): the shape measured on a 2-core
# AVX2 CPU (no native bfloat16) on 2026-12-08: bfloat16 one-row passes faster, its batched
# passes and prompt reading far slower
AVX2 = {"float32": (0.46, 1.85, 22.0), "bfloat16": (0.29, 2.94, 12.0)}
NATIVE = {"float32": (0.30, 0.60, 60.0), "bfloat16": (0.15, 0.30, 120.0)}


def costs(shape):
    from specscope.core.chooser import Costs

    return {f"{d}/none": Costs({r: one + (many - one) * (r - 1) / 15 for r in ROWS}, tps)
            for d, (one, many, tps) in shape.items()}


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))

    def save(shape):
        from specscope.core.machine import MachineReport, machine_info, save_report, shape_key
        from specscope.core.tiny import tiny_config

        report = MachineReport(machine_info(), 10.0, {shape_key(tiny_config("target")): costs(shape)})
        save_report(report)
        return report
    return save


def test_the_dtype_where_a_batch_of_answers_is_cheapest(machine, tmp_path):
    from specscope.auto import choose_for, training_dtype
    from specscope.profiles import load_profile

    prof = load_profile(write(tmp_path, "auto.yaml", PROFILE))
    report = machine(AVX2)
    assert choose_for(prof, report).dtype == "bfloat16"  # generate's choice: one-row passes
    best, seconds = training_dtype(prof, report, 16)
    assert best == "float32" and seconds["bfloat16"] > 1.5 * seconds["float32"]
    assert training_dtype(prof, machine(NATIVE), 16)[0] == "bfloat16"


@pytest.mark.parametrize("shape,trained,said", [(AVX2, "float32", True), (NATIVE, "bfloat16", False)])
def test_mtp_train_trains_in_it_and_says_so(machine, tmp_path, shape, trained, said):
    from specscope.core.mtp import artifact_path, read_meta

    machine(shape)
    r = runner.invoke(app, [*TRAIN, "-p", write(tmp_path, "auto.yaml", PROFILE)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert ("training in float32: a batch of 16 answers is predicted 1.8x faster here than in "
            "bfloat16, the dtype generate runs in" in text) == said
    assert read_meta(artifact_path("auto"))[0]["training"]["dtype"] == trained
