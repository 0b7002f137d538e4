"""Progress displays (units, time left, width, lines without a terminal) and help texts."""
import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from specscope.cli import app
from specscope.frontends.progress import make_progress, task_line
from tests.clitools import json_lines

runner = CliRunner()
SAMPLE = str(Path(__file__).resolve().parent.parent / "data" / "spec_bench_sample.jsonl")
LONG = "assembling qwen2.5-coder-1.5b-instruct (22 parts) from the installed packages"


def rendered(progress, width=80) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    console.print(progress.make_tasks_table(progress.tasks))
    return console.file.getvalue().rstrip("\n").split("\n")


def test_bars_do_not_wrap_at_80_columns_and_use_the_right_units():
    p = make_progress(Console(file=io.StringIO(), force_terminal=True))
    p.add_task(LONG, total=1_117_320_768, completed=300_000_000)
    p.add_task("searching layers to skip", total=24, completed=5)
    p.add_task("loading embedded:qwen2.5-coder-1.5b-instruct", total=None)
    lines = rendered(p)
    assert len(lines) == 3, lines  # one line per task: nothing wrapped
    assert all(len(line) <= 80 for line in lines)
    assert "GB" in lines[0] and "…" in lines[0]
    assert "5/24" in lines[1] and not re.search(r"\d\s*(bytes|[KMG]B)\b", lines[1])
    assert not re.search(r"\d\s*(bytes|[KMG]B)\b", lines[2])


def test_time_left_comes_from_the_average_rate():
    p = make_progress(Console(file=io.StringIO(), force_terminal=True))
    task = p.add_task("calibrating (generate)", total=10)
    t = p.tasks[0]
    t.start_time = p.get_time() - 120  # 2 of 10 prompts in two minutes: eight minutes left
    p.update(task, completed=2)
    assert "~8:00 left" in task_line(p.tasks[0])
    assert "~8:00 left" in rendered(p)[0]


def test_without_a_terminal_a_line_at_start_and_end_and_none_in_between():
    out = io.StringIO()
    console = Console(file=out, width=80)  # a file: not a terminal
    with make_progress(console, lines=True, interval=3600) as p:
        task = p.add_task("runs", total=3)
        for _ in range(3):
            p.advance(task)
    lines = out.getvalue().strip().split("\n")
    assert lines[0].startswith("runs: 0/3") and lines[-1].startswith("runs: 3/3")
    assert len(lines) == 2 and "done" in lines[-1]
    with make_progress(console, lines=True, interval=0) as p:  # every update when the interval allows
        task = p.add_task("runs", total=3)
        for _ in range(3):
            p.advance(task)
    assert out.getvalue().strip().split("\n")[2:] == [
        "runs: 0/3, 0:00 elapsed", "runs: 1/3, 0:00 elapsed, ~0:00 left",
        "runs: 2/3, 0:00 elapsed, ~0:00 left", "runs: 3/3, 0:00 elapsed, done"]


def test_trim_without_a_terminal_reports_calibration_on_stderr(tmp_path):
    texts = tmp_path / "corpus.txt"
    texts.write_text("the cat sat on the mat\nthe dog sat\n")
    r = runner.invoke(app, ["trim", "--top-k", "10", "-p", "tiny-random", "--prompts", str(texts),
                            "--source", "corpus", "--out", str(tmp_path / "c.safetensors")])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("calibrating (corpus)")]
    assert lines[0].startswith("calibrating (corpus): 0/2, 0 tokens")
    assert lines[-1].startswith("calibrating (corpus): 2/2") and "done" in lines[-1]


def test_mtp_train_without_a_terminal_reports_each_stage_and_the_loss_on_stderr(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "prompts.txt"
    texts.write_text("def add(a, b):\nthe cat sat on\nsort a list\nwrite a loop\n")
    out = tmp_path / "head.safetensors"
    r = runner.invoke(app, ["mtp", "train", "-p", "tiny-random", "--prompts", str(texts),
                            "--held", "1", "--max-new-tokens", "6", "--tokens", "200",
                            "--samples", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.is_file()
    for stage in ("self-distillation", "teacher-forced hidden states", "train"):
        lines = [line for line in r.stderr.splitlines() if line.startswith(stage)]
        assert lines and "done" in lines[-1], (stage, r.stderr)
    assert re.search(r"^train: 100/100, [\d,]+ tokens, loss \d", r.stderr, re.M), r.stderr


def help_text(*command):
    r = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert r.exit_code == 0, r.output
    return " ".join(r.stdout.split())


@pytest.mark.parametrize("command", [["generate"], ["chat"], ["trim"], ["bench"],
                                     ["layerskip-search"], ["mtp", "train"]])
def test_metavars_read_naturally(command):
    options = help_text(*command).split("Options:")[1]  # (typer always types arguments: PROMPT <str>)
    assert not re.search(r"<\w+(\[\w+\])?>", options), options  # no <int>, <path>, <list[str]>


def test_stop_is_text_and_repeatable():
    assert "--stop TEXT Stop after this string (repeatable)" in help_text("generate")


def test_trim_and_bench_help_name_their_defaults():
    trim = help_text("trim")
    assert "packaged Spec-Bench dev half" in trim and "$SPECSCOPE_BENCH_PROMPTS" in trim
    squeezed = trim.replace(" ", "")  # help wraps long words at hyphens
    assert "trimmed/PROFILE-topK.safetensors" in squeezed and "~/.cache/specscope" in squeezed
    bench = help_text("bench")
    assert "packaged Spec-Bench dev half" in bench
    assert "--out DIR Output directory for results.json" in bench
    assert "[default:bench-results]" in bench.replace(" ", "")


def mtp_train_args(tmp_path, monkeypatch):
    """(prompts file, head path, the common `mtp train` arguments) for a tiny, quick run."""
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "prompts.txt"
    texts.write_text("def add(a, b):\nthe cat sat on\nsort a list\nwrite a loop\nsplit a string\n")
    out = tmp_path / "head.safetensors"
    return texts, out, ["mtp", "train", "-p", "tiny-random", "--prompts", str(texts), "--held", "1",
                        "--limit", "10", "--samples", "1", "--max-new-tokens", "6", "--tokens", "100",
                        "--out", str(out)]


def test_mtp_train_resume_adds_up_and_a_missing_head_is_refused(tmp_path, monkeypatch):
    texts, out, common = mtp_train_args(tmp_path, monkeypatch)
    r = runner.invoke(app, [*common, "--resume"])
    assert r.exit_code == 2 and "--resume: no head at" in r.output
    assert runner.invoke(app, common).exit_code == 0
    from specscope.core.mtp import read_meta

    first = read_meta(out)[0]["training"]
    r = runner.invoke(app, [*common, "--resume", "--labels", "tokens", "--vocab-k", "64"])
    assert r.exit_code == 0, r.output
    assert "resumed from" in r.stdout
    assert "--vocab-k ignored" in " ".join(r.stderr.split())
    second = read_meta(out)[0]["training"]
    assert second["steps"] > first["steps"] and second["tokens"] > first["tokens"]
    assert second["init"] == "resumed" and second["labels"] == "tokens"
    assert [e["labels"] for e in second["earlier"]] == ["target"]
    assert second["held_keys"] == first["held_keys"] and len(first["held_keys"]) == 1
    # more prompts on resume: the held-apart prompt stays the earlier run's, never trained on
    texts.write_text("def add(a, b):\nthe cat sat on\nsort a list\nwrite a loop\nprint it\nread a file\nsplit a string\n")
    r = runner.invoke(app, [*common, "--resume"])
    assert r.exit_code == 0, r.output
    third = read_meta(out)[0]["training"]
    assert third["held_keys"] == first["held_keys"] and third["n_train"] == 5


def test_mtp_train_samples_more_answers_for_training_prompts_only(tmp_path, monkeypatch):
    import json

    _, out, common = mtp_train_args(tmp_path, monkeypatch)
    r = runner.invoke(app, [*common, "--samples", "2", "--temperature", "0"])
    assert r.exit_code == 2 and "--temperature must be > 0" in r.output
    common += ["--sampled-by", "target"]
    r = runner.invoke(app, [*common, "--samples", "3", "--temperature", "1.0"])
    assert r.exit_code == 0, r.output
    from specscope.core.mtp import read_meta

    training = read_meta(out)[0]["training"]
    assert training["n_train"] == 3 * 3 and training["n_held"] == 1  # 3 prompts x 3 answers
    assert training["samples"] == 3 and training["temperature"] == 1.0
    [data] = (tmp_path / "data").iterdir()  # beside --out
    answers = json.loads(data.read_text())
    greedy = {k: v for k, v in answers.items() if "#" not in k}
    sampled = {k: v for k, v in answers.items() if "#" in k}
    assert len(greedy) == 5 and len(sampled) == 2 * 3  # none for the 2 held-apart prompts
    assert any(v != greedy[k.split("#")[0]] for k, v in sampled.items())  # drawn, not greedy
    r = runner.invoke(app, [*common, "--samples", "3", "--temperature", "1.0"])
    assert r.exit_code == 0 and "(11 answers from" in " ".join(r.stdout.split()), r.stdout


def test_mtp_train_samples_by_the_drafter_are_labelled_by_the_target(tmp_path, monkeypatch):
    """--sampled-by drafter: the sampled answers are the drafter's (its own answers file), they
    count as text with no answer part (the target's distributions label every position, the
    drafter's tokens none), and tokens labels are refused."""
    import json

    from specscope.core.models import load_causal_lm
    from specscope.core.mtp import read_meta
    from specscope.profiles import load_profile

    _, out, common = mtp_train_args(tmp_path, monkeypatch)
    r = runner.invoke(app, [*common, "--samples", "2", "--sampled-by", "drafter", "--labels", "tokens"])
    assert r.exit_code == 2 and "--sampled-by drafter needs --labels target" in r.output
    r = runner.invoke(app, [*common, "--samples", "2", "--sampled-by", "someone"])
    assert r.exit_code == 2 and "--sampled-by must be target or drafter" in r.output
    r = runner.invoke(app, [*common, "--samples", "3", "--sampled-by", "drafter", "--temperature", "1.0"])
    assert r.exit_code == 0, r.output
    training = read_meta(out)[0]["training"]
    assert training["sampled_by"] == "drafter" and training["n_train"] == 3 * 3
    files = {f.name: json.loads(f.read_text()) for f in (tmp_path / "data").iterdir()}
    [drafted] = [v for name, v in files.items() if "-drafter-" in name]
    [greedy] = [v for name, v in files.items() if "-drafter-" not in name]
    assert len(drafted) == 2 * 3 and all("#sample" in k for k in drafted)
    assert len(greedy) == 5 and all("#" not in k for k in greedy)
    # who wrote what: every sampled batch came from the drafter, the greedy ones from the target
    # (a spy that records the model and calls through; the answers above are its real output)
    import specscope.train.caches as loop

    real, writers = loop.self_distill, []
    monkeypatch.setattr(loop, "self_distill", lambda model, *a, **k: writers.append(
        (model.config.num_hidden_layers, a[4] if len(a) > 4 else k.get("temperature"))) or real(model, *a, **k))
    for f in (tmp_path / "data").iterdir():
        f.unlink()
    assert runner.invoke(app, [*common, "--samples", "3", "--sampled-by", "drafter",
                               "--temperature", "1.0"]).exit_code == 0
    prof = load_profile("tiny-random")
    layers = {name: load_causal_lm(getattr(prof, name), "float32", "cpu").config.num_hidden_layers
              for name in ("target", "drafter")}
    assert layers["target"] != layers["drafter"]
    assert sorted(set(writers)) == sorted({(layers["target"], 0.0), (layers["drafter"], 1.0)}), writers
    lines = " ".join(r.stdout.split())
    assert "sampled at T=1 by the drafter" in lines


def test_mtp_train_corpus_adds_teacher_forced_text(tmp_path, monkeypatch):
    import json

    _, out, common = mtp_train_args(tmp_path, monkeypatch)
    text = tmp_path / "more.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log " * 6)
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"turns": ["sort a list of numbers"], "reference": ["use sorted"],
                                 "category": "coding"}) + "\n")
    r = runner.invoke(app, [*common, "--corpus", str(text), "--labels", "tokens"])
    assert r.exit_code == 2 and "--corpus needs --labels target" in r.output
    r = runner.invoke(app, [*common, "--corpus", str(tmp_path / "none.txt")])
    assert r.exit_code == 2 and "--corpus: file not found" in r.output
    r = runner.invoke(app, [*common, "--corpus", str(text), "--corpus", str(lines),
                            "--corpus-chunk", "16", "--corpus-tokens", "70"])
    assert r.exit_code == 0, r.output
    from specscope.core.mtp import read_meta
    from specscope.core.models import load_tokenizer
    from specscope.profiles import load_profile

    training = read_meta(out)[0]["training"]
    tok = load_tokenizer(load_profile("tiny-random").target)
    n = len(tok.encode(text.read_text(), add_special_tokens=False))
    assert n >= 70  # the cap cuts the first file; the second gets nothing
    assert training["corpus_tokens"] == 70 and training["n_corpus"] == 5  # 16+16+16+16+6
    assert training["n_train"] == 3 and [c["path"] for c in training["corpus"]] == [str(text), str(lines)]
    assert "corpus: 70 tokens in 5 sequences" in " ".join(r.stdout.split())
    bars = [line for line in r.stderr.splitlines() if line.startswith("teacher-forced hidden states")]
    assert bars[-1].startswith("teacher-forced hidden states: 10/10")  # 3 + 2 held apart + 5 pieces
    # JSONL: a line's text fields (turns and reference), not its id or category; a line with no
    # text field gives all its strings
    from specscope.train.corpus import read_corpus

    [(_, doc)] = read_corpus([lines])
    assert "sort a list of numbers" in doc and "use sorted" in doc and "coding" not in doc
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"question_id": 7, "body": "a heap is a tree", "tags": ["ds"]}) + "\n")
    [(_, doc)] = read_corpus([other])
    assert "a heap is a tree" in doc and "ds" in doc


def test_a_trained_head_drafts_in_generate_and_draft_quant_quantizes_it(tmp_path, monkeypatch):
    """The head trained into the cache is found by `generate --method mtp`; --draft-quant applies
    to it (its own linears; the LM head it shares stays the target's); ids equal plain decoding."""
    texts, out, common = mtp_train_args(tmp_path, monkeypatch)
    at = common.index("--out")
    assert runner.invoke(app, common[:at]).exit_code == 0  # default --out: the profile's cache path
    ids = {}
    for method, quant in (("ar", "none"), ("mtp", "none"), ("mtp", "int8"), ("mtp-tree", "int8")):
        r = runner.invoke(app, ["generate", "sort a list", "-p", "tiny-random", "-n", "20", "--json",
                                "--method", method, "--draft-len", "3", "--draft-quant", quant])
        assert r.exit_code == 0, r.output
        ids[method, quant] = json_lines(r.stdout)[-1]["token_ids"]
    assert len(set(map(tuple, ids.values()))) == 1, ids
    from specscope.core.quant import Int4Linear, Int8Linear, QuantLinear
    from specscope.profiles import load_profile, with_quant
    from specscope.session import load_session

    session = load_session(with_quant(load_profile("tiny-random"), draft_quant="int8"))
    head = session.decoder.drafter("mtp").head
    assert isinstance(head.proj, QuantLinear) and isinstance(head.block.mlp.down_proj, QuantLinear)
    assert not isinstance(session.target.model.lm_head, (Int8Linear, Int4Linear))  # (packed: float32)


def test_mtp_train_keeps_the_hidden_states_and_reads_them_back(tmp_path, monkeypatch):
    """The teacher-forced hidden states are saved beside the artifact, one file a sequence: a
    second run computes none of them and scores its starting head exactly as the first did; a
    damaged file is computed again."""
    from specscope.core.mtp import read_meta

    _, out, common = mtp_train_args(tmp_path, monkeypatch)
    args = [*common, "--samples", "2", "--temperature", "1.0", "--init", "auto", "--new"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    first = read_meta(out)[0]["training"]
    [folder] = (tmp_path / "hidden").iterdir()
    files = sorted(folder.glob("*.safetensors"))
    assert len(files) == 5 + 3  # 5 greedy answers (two held apart), 3 sampled
    assert "(8 sequences computed, 0 read from" in " ".join(r.stdout.split())
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "(0 sequences computed, 8 read from" in " ".join(r.stdout.split())
    assert read_meta(out)[0]["training"]["init_scores"] == first["init_scores"]
    files[0].write_bytes(b"not a safetensors file")
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "(1 sequences computed, 7 read from" in " ".join(r.stdout.split())
    assert not list(folder.glob(".*.tmp"))
