"""A real llama-server on 127.0.0.1 serving the tiny-random target, written as GGUF by the test.

Skipped only where llama-server is missing and this is not CI (CI installs `specscope[llama-server]`,
so a missing binary there fails the tests instead of skipping them).
"""
import os

import pytest

from specscope.remote.llama_server import INSTALL_HINT, LlamaServer, find_llama_server

# one thread, a small context; float32 keys/values and no flash attention: the torch model's numbers
SERVER_ARGS = ["-t", "1", "-c", "1024", "-np", "1", "--no-webui", "-ctk", "f32", "-ctv", "f32", "-fa", "off"]

if find_llama_server() is None and os.environ.get("CI"):
    raise RuntimeError(f"llama-server is missing in CI: {INSTALL_HINT}")
needs_llama_server = pytest.mark.skipif(find_llama_server() is None,
                                        reason=f"llama-server not installed ({INSTALL_HINT})")


@pytest.fixture(scope="session")
def tiny_ggufs(tmp_path_factory):
    """The tiny-random target and drafter as float32 GGUF files (the torch profile's weights)."""
    from specscope.core.gguf_write import write_tiny_gguf

    d = tmp_path_factory.mktemp("gguf")
    return write_tiny_gguf(d / "target.gguf", "target"), write_tiny_gguf(d / "draft.gguf", "draft")


@pytest.fixture(scope="module")
def tiny_server(tiny_ggufs):
    with LlamaServer(tiny_ggufs[0], args=SERVER_ARGS) as server:
        yield server
    assert server.proc is None


def remote_profile(url: str, **fields):
    from specscope.profiles import Profile, with_remote

    return with_remote(Profile(name="tiny-remote", target=url, drafter="tiny-random:draft",
                               dtype="float32", draft_len=4, max_new_tokens=24, **fields))


@pytest.fixture(autouse=True)
def no_api_key_left(monkeypatch):
    """--api-key puts the key in $SPECSCOPE_API_KEY for the process; each test starts and ends
    without it (setenv first, so the undo removes whatever a command set)."""
    monkeypatch.setenv("SPECSCOPE_API_KEY", "")
    monkeypatch.delenv("SPECSCOPE_API_KEY")
