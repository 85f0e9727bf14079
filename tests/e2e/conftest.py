"""Fixtures of the end-to-end tests: the real Claude Code CLI and the scripted fake upstream.

The pinned client (@anthropic-ai/claude-code@2.1.332) is found through $CC_PROXY_TEST_CLAUDE or
`claude` on PATH; in CI a missing client fails the run, elsewhere the tests are skipped with
the reason shown.
"""

from __future__ import annotations

import os
import shutil

import pytest

CLAUDE_ENV_VAR = "CC_PROXY_TEST_CLAUDE"
PINNED = "@anthropic-ai/claude-code@2.1.332"


def find_claude() -> str | None:
    explicit = os.environ.get(CLAUDE_ENV_VAR)
    if explicit:
        return explicit
    return shutil.which("claude")


@pytest.fixture(scope="module")
def claude_bin() -> str:
    found = find_claude()
    if found is None:
        reason = (
            f"the real Claude Code CLI was not found: set {CLAUDE_ENV_VAR} or put `claude` on "
            f"PATH (npm install {PINNED})"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the end-to-end tests: {reason}")
        pytest.skip(reason)
    return found
