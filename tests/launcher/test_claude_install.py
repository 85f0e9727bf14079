"""Which claude `run` starts (option, env, PATH, cc-proxy's own install) and the npm install
a first run offers, with a fake npm on PATH (no network)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from cc_nemo.errors import UserError
from cc_nemo.launch import claude_install
from cc_nemo.launch.claude_install import (
    CLAUDE_CODE_PACKAGE,
    TESTED_CLAUDE_CODE,
    bin_path,
    install_claude,
    install_dir,
    installed_claude,
)
from cc_nemo.launch.launcher import (
    CLAUDE_ENV_VAR,
    DATA_DIR_SOURCE,
    ClaudeNotFound,
    find_claude,
    locate_claude,
)

CHECK_SCRIPT = Path(__file__).parents[2] / "scripts" / "check"

# Records its arguments, then lays out what `npm install --prefix DIR` leaves behind.
FAKE_NPM = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/npm-args"
prefix=""
while [ $# -gt 0 ]; do
    if [ "$1" = "--prefix" ]; then prefix="$2"; fi
    shift
done
echo "added 1 package"
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\\necho "2.1.332 (Claude Code)"\\n' > "$prefix/node_modules/.bin/claude"
chmod +x "$prefix/node_modules/.bin/claude"
"""


def make_executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_npm(directory: Path, script: str = FAKE_NPM) -> Path:
    return make_executable(directory / "npm", script)


def path_with(directory: Path) -> dict[str, str]:
    """An environment whose PATH finds `directory` first (the fake npm), then the system's
    tools the fake uses."""
    # A real claude on PATH (the end-to-end tests put one there) would win over the data dir.
    system = [
        entry
        for entry in os.environ["PATH"].split(os.pathsep)
        if entry and not (Path(entry) / "claude").exists()
    ]
    return {"PATH": os.pathsep.join([str(directory), *system])}


def test_the_data_dir_is_cc_proxys_own(isolated_user_dirs: Path) -> None:
    assert install_dir() == isolated_user_dirs / "data" / "cc-proxy" / "claude-code"
    assert bin_path(install_dir()) == install_dir() / "node_modules" / ".bin" / "claude"


def test_lookup_order_is_option_then_env_then_path_then_data_dir(tmp_path: Path) -> None:
    from_option = make_executable(tmp_path / "opt" / "claude")
    from_env = make_executable(tmp_path / "env" / "claude")
    on_path = make_executable(tmp_path / "path" / "claude")
    own = make_executable(bin_path(install_dir()))
    path = str(on_path.parent)
    env = {"PATH": path, CLAUDE_ENV_VAR: str(from_env)}

    found = locate_claude(str(from_option), env)
    assert (found.path, found.source) == (str(from_option), "--claude")
    found = locate_claude(None, env)
    assert (found.path, found.source) == (str(from_env), CLAUDE_ENV_VAR)
    found = locate_claude(None, {"PATH": path})
    assert (found.path, found.source) == (str(on_path), "PATH")
    found = locate_claude(None, {"PATH": str(tmp_path / "empty")})
    assert (found.path, found.source) == (str(own), DATA_DIR_SOURCE)
    assert find_claude(None, {"PATH": ""}) == str(own)


def test_a_broken_option_or_env_never_falls_back_to_the_data_dir(tmp_path: Path) -> None:
    make_executable(bin_path(install_dir()))
    with pytest.raises(UserError, match="--claude points at") as caught:
        locate_claude(str(tmp_path / "nope"), {"PATH": ""})
    assert not isinstance(caught.value, ClaudeNotFound)
    with pytest.raises(UserError, match="CC_PROXY_CLAUDE points at"):
        locate_claude(None, {"PATH": "", CLAUDE_ENV_VAR: str(tmp_path / "nope")})


def test_nothing_anywhere_is_claude_not_found_in_one_line() -> None:
    with pytest.raises(ClaudeNotFound) as caught:
        locate_claude(None, {"PATH": ""})
    assert "\n" not in caught.value.message
    assert "npm install -g @anthropic-ai/claude-code" in caught.value.message


def test_a_non_executable_file_in_the_data_dir_is_not_claude() -> None:
    path = bin_path(install_dir())
    path.parent.mkdir(parents=True)
    path.write_text("half-installed")
    assert installed_claude() is None
    with pytest.raises(ClaudeNotFound):
        locate_claude(None, {"PATH": ""})


def test_install_runs_a_local_npm_install_of_the_tested_version(tmp_path: Path) -> None:
    npm = fake_npm(tmp_path / "bin")
    target = tmp_path / "data" / "claude-code"
    log = (tmp_path / "npm-out").open("w")
    with log:
        path = install_claude(path_with(npm.parent), directory=target, output=log)
    assert path == bin_path(target)
    assert (npm.parent / "npm-args").read_text().splitlines() == [
        "install",
        "--prefix",
        str(target),
        "--no-audit",
        "--no-fund",
        f"{CLAUDE_CODE_PACKAGE}@{TESTED_CLAUDE_CODE}",
    ]
    assert "added 1 package" in (tmp_path / "npm-out").read_text()
    # The next lookup finds it without asking again.
    assert installed_claude(target) == path


def test_install_into_the_default_dir_is_then_found_by_the_lookup(tmp_path: Path) -> None:
    npm = fake_npm(tmp_path / "bin")
    env = path_with(npm.parent)
    path = install_claude(env, output=subprocess.DEVNULL)
    assert locate_claude(None, env).path == str(path)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("#!/bin/sh\nexit 3\n", "npm could not install Claude Code (exit 3)"),
        ("#!/bin/sh\nexit 0\n", "npm finished but"),
    ],
)
def test_install_failures_are_one_line(tmp_path: Path, script: str, message: str) -> None:
    npm = fake_npm(tmp_path / "bin", script)
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        install_claude(path_with(npm.parent), directory=tmp_path / "t", output=subprocess.DEVNULL)
    assert "\n" not in caught.value.message


def test_install_without_npm_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"npm is not on PATH: install Node\.js"):
        install_claude({"PATH": str(tmp_path)}, directory=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_the_manual_hint_is_the_same_local_install() -> None:
    hint = claude_install.manual_install_hint(Path("/x y/claude-code"))
    assert hint == (
        "npm install --prefix '/x y/claude-code' --no-audit --no-fund "
        f"@anthropic-ai/claude-code@{TESTED_CLAUDE_CODE}"
    )


def test_the_installed_version_is_the_one_the_checks_test() -> None:
    pinned = re.search(r"^CLAUDE_CODE_VERSION=(\S+)$", CHECK_SCRIPT.read_text(), re.M)
    assert pinned is not None
    assert pinned.group(1) == TESTED_CLAUDE_CODE
