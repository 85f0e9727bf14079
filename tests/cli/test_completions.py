"""Shell completion: committed scripts are current, and aliases complete dynamically."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cc_nemo.cli.main import complete_model_alias
from scripts.completions_gen import (
    DEFAULT_DIR,
    SCRIPT_FILES,
    completion_script,
    main,
    stale_scripts,
    write_scripts,
)
from tests.cli.conftest import run_cli

BIN_DIR = Path(sys.executable).parent


def test_committed_completion_scripts_match_the_cli() -> None:
    stale = stale_scripts(DEFAULT_DIR)
    assert stale == [], "run `python scripts/completions_gen.py` and commit completions/"


def test_an_edited_or_missing_script_is_reported_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_scripts(tmp_path)
    assert main(["--check", str(tmp_path)]) == 0
    edited = tmp_path / SCRIPT_FILES["bash"]
    edited.write_text(edited.read_text(encoding="utf-8") + "# hand edit\n", encoding="utf-8")
    (tmp_path / SCRIPT_FILES["fish"]).unlink()
    assert main(["--check", str(tmp_path)]) == 1
    report = capsys.readouterr().err
    assert SCRIPT_FILES["bash"] in report and SCRIPT_FILES["fish"] in report
    assert SCRIPT_FILES["zsh"] not in report


@pytest.mark.parametrize("shell", sorted(SCRIPT_FILES))
def test_completion_scripts_call_back_into_cc_proxy(shell: str) -> None:
    script = completion_script(shell)
    assert "_CC_PROXY_COMPLETE=complete_" in script and "cc-proxy" in script
    if shell == "zsh":
        assert script.startswith("#compdef cc-proxy\n")


def test_model_alias_completion_includes_user_aliases() -> None:
    assert complete_model_alias("gl") == ["glm", "glm-flash"]
    run_cli("models", "add", "glm53", "@cf/zai-org/glm-5.3")
    assert complete_model_alias("gl") == ["glm", "glm-flash", "glm53"]
    assert "nemotron" in complete_model_alias("")


def test_model_alias_completion_survives_a_broken_config(isolated_user_dirs: Path) -> None:
    path = isolated_user_dirs / "config" / "cc-proxy" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("not toml [")
    assert complete_model_alias("kimi") == ["kimi", "kimi-code"]


def bash_complete(words: list[str]) -> list[str]:
    """Complete the last word of `words` in a real bash with our generated script sourced."""
    script = DEFAULT_DIR / SCRIPT_FILES["bash"]
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source '{script}'\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_cc_proxy_completion cc-proxy\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.skipif(
    shutil.which("bash") is None or not (BIN_DIR / "cc-proxy").exists(),
    reason="needs bash and the installed cc-proxy script",
)
def test_bash_completes_commands_model_aliases_and_user_aliases() -> None:
    assert {"login", "logout"} <= set(bash_complete(["cc-proxy", "lo"]))
    assert bash_complete(["cc-proxy", "models", "default", "gemm"]) == ["gemma4"]
    run_cli("models", "add", "mine", "@cf/me/model")
    assert bash_complete(["cc-proxy", "models", "remove", ""]) == ["mine"]
