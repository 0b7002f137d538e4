import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
