"""The core never imports a front-end library."""
import subprocess
import sys


def test_core_imports_no_front_end():
    code = (
        "import sys\n"
        "import specscope.core.engine, specscope.core.models, specscope.core.stats\n"
        "import specscope.core.drafters.model, specscope.core.embedded, specscope.session\n"
        "bad = [m for m in ('textual', 'typer', 'rich') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_check_can_fail():
    code = "import sys, specscope.cli, rich.console; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
