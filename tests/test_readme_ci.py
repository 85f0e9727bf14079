"""A newcomer follows the README, CI follows .ci/run: the two must run the same command, and
that command must lint and run the whole suite without hiding a failure."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check"


def readme_development_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Development", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's Development section has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def ci_development_commands() -> list[str]:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    begin = script.index("# --- README: Development (begin)\n")
    end = script.index("# --- README: Development (end)")
    body = script[begin:end].splitlines()[1:]
    return [line for line in body if line.strip()]


def check_commands() -> list[str]:
    lines = CHECK.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_exactly_the_readme_development_commands() -> None:
    assert ci_development_commands() == readme_development_commands() == ["scripts/check"]


def test_the_check_lints_then_runs_the_whole_suite_last() -> None:
    commands = check_commands()
    assert commands[0] == "set -euo pipefail"
    assert "ruff check ." in commands
    assert "ruff format --check ." in commands
    assert commands[-1] == 'python -m pytest -q "$@"'
    assert CHECK.stat().st_mode & 0o111, "scripts/check must be executable"


def test_no_step_hides_a_failure_behind_and_and() -> None:
    """Under `set -e`, a failing command on the left of `&&` does not stop the script."""
    lines = ci_development_commands() + check_commands()
    assert [line for line in lines if "&&" in line] == []


def test_the_check_pins_the_client_the_end_to_end_tests_expect() -> None:
    from tests.e2e.conftest import PINNED

    pinned = re.search(r"^CLAUDE_CODE_VERSION=(\S+)$", CHECK.read_text(), re.M)
    assert pinned, "scripts/check names no CLAUDE_CODE_VERSION"
    assert f"@anthropic-ai/claude-code@{pinned.group(1)}" == PINNED
