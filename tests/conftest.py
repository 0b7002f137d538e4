import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models are all overhead: one thread is faster and does not fight other processes.
DEFAULT_THREADS = torch.get_num_threads()
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_session():
    """The tiny-random profile loaded once: seeded models, BPE tokenizer, no download."""
    from specscope.profiles import load_profile
    from specscope.session import load_session

    return load_session(load_profile("tiny-random"))


def embedded_available() -> bool:
    try:
        from specscope.core.embedded import EMBEDDED, part_paths

        for model in EMBEDDED.values():
            part_paths(model)
        return True
    except Exception:
        return False


needs_embedded = pytest.mark.skipif(not embedded_available() and not os.environ.get("CI"),
                                    reason="embedded pair not installed (pip install -e '.[embedded]')")


@pytest.fixture(scope="session")
def tiny_trimmed(tmp_path_factory):
    """A VocabTrim artifact for the tiny-random pair (K=300), made by `specscope trim` once."""
    from typer.testing import CliRunner

    from specscope.cli import app as cli

    out = tmp_path_factory.mktemp("trim") / "tiny-top300.safetensors"
    r = CliRunner().invoke(cli, ["trim", "--top-k", "300", "-p", "tiny-random", "--prompts",
                                 "tests/data/spec_bench_sample.jsonl", "--limit", "1",
                                 "--source", "corpus", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out
