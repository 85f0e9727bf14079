"""A newcomer follows the README, CI follows .ci/run: the two must run the same commands."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def test_ci_runs_exactly_the_readme_development_commands() -> None:
    assert ci_development_commands() == readme_development_commands()


def test_the_test_command_is_the_last_step_of_both() -> None:
    assert readme_development_commands()[-1] == "python -m pytest -q"
    assert ci_development_commands()[-1] == "python -m pytest -q"


def test_no_ci_step_hides_a_failure_behind_and_and() -> None:
    """Under `set -e`, a failing command on the left of `&&` does not stop the script."""
    assert [line for line in ci_development_commands() if "&&" in line] == []
