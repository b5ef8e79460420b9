"""The command line: help, version, and one-line errors with exit status 2 for user mistakes.
Run: `.venv/bin/pytest tests/test_cli.py`.
"""

import subprocess
import sys

import rnnlab
import rnnlab.init
from rnnlab.cli import main


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "inits" in capsys.readouterr().out
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"rnnlab {rnnlab.__version__}"


def test_inits_lists_every_scheme(capsys):
    assert main(["inits"]) == 0
    out = capsys.readouterr().out
    for name in rnnlab.init.SCHEMES:
        assert name in out


def test_unknown_command_is_one_line_exit_2_without_traceback():
    result = subprocess.run([sys.executable, "-m", "rnnlab", "bogus"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "invalid choice: 'bogus'" in lines[0] and "choose from" in lines[0]
    assert "Traceback" not in result.stderr
