"""The embedded Qwen2.5-Coder pair in float32: speculative and plain decoding agree token for token.

Slow (converts the GGUF slices on first use, then generates on CPU). CI installs the pair.
"""
import json

import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.conftest import needs_embedded

pytestmark = [pytest.mark.slow, needs_embedded]


@pytest.fixture(autouse=True)
def all_threads():
    import torch

    from tests.conftest import DEFAULT_THREADS

    torch.set_num_threads(DEFAULT_THREADS)
    yield
    torch.set_num_threads(1)


def test_draft_equals_ar_on_a_code_prompt_in_float32():
    runner = CliRunner()
    out = {}
    for method in ("ar", "draft"):
        # a fixed length: the profile's `auto` may decode plainly in float32, where drafting
        # barely pays; this test is about exactness with real drafts
        r = runner.invoke(app, ["generate", "def quicksort(arr):", "--method", method, "-k", "5",
                                "--dtype", "float32", "--max-new-tokens", "48", "--json"])
        assert r.exit_code == 0, r.output
        out[method] = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["draft"]["token_ids"] == out["ar"]["token_ids"]
    assert out["ar"]["tau"] == 1.0
    assert out["draft"]["tau"] > 2.0
    assert "quicksort" in out["ar"]["text"] or "pivot" in out["ar"]["text"]
