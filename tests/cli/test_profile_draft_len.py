"""A profile's draft_len may be a number or auto[:rule]: the default can be the adaptive length."""
import pytest

from specscope.core.errors import SpecScopeError
from specscope.profiles import load_profile
from specscope.session import make_controls


def write(tmp_path, draft_len):
    path = tmp_path / "p.yaml"
    path.write_text(f"target: tiny-random:target\ndrafter: tiny-random:draft\ndraft_len: {draft_len}\n")
    return load_profile(str(path))


@pytest.mark.parametrize("value,adaptive,rule,start", [
    ("5", False, "cost", 5), ("auto", True, "cost", 5), ("auto:heuristic", True, "heuristic", 5),
    ("learned", True, "learned", 5), ("auto:learned", True, "learned", 5)])
def test_draft_len_number_or_auto(tmp_path, value, adaptive, rule, start):
    c = make_controls(write(tmp_path, value))
    assert (c.adaptive, c.adaptive_rule, c.draft_len) == (adaptive, rule, start)
    assert make_controls(write(tmp_path, value), adaptive=False, draft_len=3).adaptive is False


@pytest.mark.parametrize("value", ["fast", "true"])
def test_other_draft_lens_are_refused(tmp_path, value):
    with pytest.raises(SpecScopeError, match="draft_len"):
        write(tmp_path, value)
