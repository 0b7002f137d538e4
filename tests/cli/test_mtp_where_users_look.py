"""The FastMTP head where users look: `generate`, `chat` and `bench` say in one line, when the
head is missing, the command that makes one and its time on this machine; that command works;
`profiles` then shows the head (held-out acceptance, training time, date)."""
import re

import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error

runner = CliRunner()


def named_command(line: str) -> list[str]:
    [command] = re.findall(r"`(specscope mtp train [^`]*)`", line)
    return command.split()[1:]


def test_a_missing_head_names_the_command_that_makes_one_and_it_works(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    r = runner.invoke(app, ["generate", "sort a list", "-p", "tiny-random", "--method", "mtp"])
    assert_clean_error(r, "no trained FastMTP head for profile 'tiny-random'",
                       "`specscope mtp train --profile tiny-random` makes one in 30 min")
    r_bench = runner.invoke(app, ["bench", "-p", "tiny-random", "-m", "mtp-tree",
                                  "--out", str(tmp_path / "o")])
    assert_clean_error(r_bench, "`specscope mtp train --profile tiny-random`")
    from specscope.core.errors import SpecScopeError
    from specscope.frontends.preflight import check_options  # what chat runs before it loads
    from specscope.profiles import load_profile

    with pytest.raises(SpecScopeError, match="`specscope mtp train --profile tiny-random`"):
        check_options(load_profile("tiny-random"), "mtp", None, None)
    r = runner.invoke(app, ["profiles"])
    assert "FastMTP head: none (`specscope mtp train --profile tiny-random`" in r.stdout
    # the command named, with a small budget (the default one is 30 minutes): it makes the head
    command = named_command(r_bench.stderr)
    small = ["--max-new-tokens", "8", "--limit", "1", "--samples", "2", "--tokens", "100"]
    r = runner.invoke(app, [*command, *small])
    assert r.exit_code == 0, r.output
    assert re.search(r"^plan for 30 min: loading and rates \d+ s, .*training \d+ min", r.stderr, re.M)
    # now it is where users look: generate drafts with it, profiles shows it
    r = runner.invoke(app, ["generate", "sort a list", "-p", "tiny-random", "--method", "mtp",
                            "-n", "8"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["profiles"])
    line = next(x for x in r.stdout.splitlines() if "FastMTP head:" in x and "tiny-random" in x)
    assert re.search(r"held-out acceptance \d\.\d\d \d\.\d\d \d\.\d\d \(draft steps 1\.\.3\), "
                     r"trained \d+ min, \d{4}-\d\d-\d\d \d\d:\d\d", line), line
    # the rates that run measured are cached: with the head gone, the line gives the plan too
    from specscope.core.mtp import artifact_path

    artifact_path("tiny-random").unlink()
    r = runner.invoke(app, ["generate", "sort a list", "-p", "tiny-random", "--method", "mtp"])
    assert_clean_error(r, "(the plan on this machine: ", "training ")
