"""The per-machine cost cache: keyed so another CPU or torch measures again, never trusting a
damaged file. Measured for real, on the tiny models' shapes (seconds)."""
import dataclasses
import json

import pytest

from specscope.core import machine
from specscope.core.tiny import tiny_config


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    return tmp_path


def configs():
    return {"target": tiny_config("target"), "drafter": tiny_config("draft")}


def test_measures_every_format_and_reads_it_back(cache):
    report = machine.measure_machine(configs(), reps=1)
    path = machine.report_path(report.info)
    assert path.is_file() and path.parent == cache / "machine"
    again = machine.load_report(machine.machine_info())
    assert again is not None and again.models == report.models
    target = again.costs(tiny_config("target"))
    assert ("float32", "none") in target and ("bfloat16", "int8") in target
    assert set(target[("float32", "none")].passes) == set(machine.PASS_ROWS)
    drafter = again.costs(tiny_config("draft"))
    assert ("bfloat16", "int4") in drafter and set(drafter[("bfloat16", "int4")].passes) == {1}
    assert all(c.prefill_tps > 0 for c in drafter.values())


def test_the_embedded_pairs_shapes_before_conversion_find_the_report_made_after_it():
    # before its first conversion an embedded model's config comes from model_config's table
    # (tied output matrix); the converted config.json has an output matrix of its own: the two
    # must name the same measurements, or every command after the first measures the machine again
    from transformers import Qwen2Config

    from specscope.core.model_config import EMBEDDED_SHAPES

    for shapes in EMBEDDED_SHAPES.values():
        before = Qwen2Config(vocab_size=151936, tie_word_embeddings=True, **shapes)
        after = Qwen2Config(vocab_size=151936, tie_word_embeddings=False, **shapes)
        assert machine.shape_key(before) == machine.shape_key(after)
    assert machine.shape_key(tiny_config("target")) != machine.shape_key(tiny_config("draft"))


def test_another_cpu_or_torch_is_measured_again(cache):
    report = machine.measure_machine(configs(), reps=1)
    info = report.info
    for change in ({"cpu": "Some Other CPU"}, {"torch": "9.9.9"}, {"flags": ("avx2",)},
                   {"threads": info.threads + 1}, {"capability": "DEFAULT"}):
        other = dataclasses.replace(info, **change)
        assert other.key != info.key
        assert machine.load_report(other) is None  # nothing cached for that machine


def test_a_damaged_or_implausible_cache_is_measured_again_not_trusted(cache, monkeypatch):
    report = machine.measure_machine(configs(), reps=1)
    path = machine.report_path(report.info)
    path.write_text(path.read_text()[:-40])  # cut short
    assert machine.load_report(report.info) is None
    data = report.to_json()
    some = next(iter(data["models"].values()))
    next(iter(some.values()))["passes"]["1"] = -1.0
    path.write_text(json.dumps(data))
    assert machine.load_report(report.info) is None
    data = report.to_json()
    data["key"] = "0" * 16  # a file copied from another machine
    path.write_text(json.dumps(data))
    assert machine.load_report(report.info) is None
    fresh = machine.measure_machine(configs(), reps=1)  # what auto does when load_report fails
    assert machine.load_report(fresh.info) is not None


def test_info_names_the_instruction_sets_and_kernels():
    info = machine.machine_info()
    assert info.threads >= 1 and info.torch and info.capability
    assert set(info.flags) <= set(machine.KNOWN_FLAGS)
