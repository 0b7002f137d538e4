"""Helpers shared by the CLI tests (generate, trim, bench)."""
import json


def json_lines(output):
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def assert_clean_error(result, *needles):
    """One `error: ...` line on stderr, exit code 2, no traceback."""
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for n in needles:
        assert n in err, err
