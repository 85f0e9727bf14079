"""Fixtures for the CLI tests: an in-process runner for `cc_nemo.cli.main.main`, keyrings, and
the fake upstream served from a thread (the commands run their own `asyncio.run`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from typer.testing import CliRunner

from cc_nemo.cli import main as cli
from tests.cli.memkeyring import MemoryKeyring
from tests.fake_upstream import FakeUpstream

# Variables the shared conftest does not clear but these commands read.
_MORE_ENV = (
    "CC_PROXY_SUBAGENT_MODEL",
    "CC_PROXY_CF_API_BASE",
    "CC_PROXY_DEBUG",
    "CC_PROXY_CLAUDE",
    "CLOUDFLARE_ACCOUNT_ID",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)

GATEWAY_TOKEN = "aig-secret-token-0123456789abcdef"
CF_API_TOKEN = "cf-api-secret-token-9876543210zyxw"
API_KEY = "sk-generic-secret-key-5555aaaa6666"


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(autouse=True)
def fail_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start every test on the always-failing backend (keyring caches its choice per process)."""
    for name in _MORE_ENV:
        monkeypatch.delenv(name, raising=False)
    keyring.set_keyring(fail.Keyring())
    MemoryKeyring.store.clear()
    yield
    keyring.set_keyring(fail.Keyring())
    MemoryKeyring.store.clear()


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    """A working OS keyring stand-in."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


def run_cli(
    *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
) -> CliResult:
    """Run `cc-proxy ARGS` through the real entry point (`main`) with captured stdio."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as streams:
        try:
            cli.main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        stdout = streams[0].getvalue().decode()
        stderr = streams[1].getvalue().decode()
    return CliResult(code, stdout, stderr)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """The fake provider (AI Gateway, OpenAI/Anthropic model listing, Cloudflare REST API)."""
    with FakeUpstream().serving_in_thread() as fake:
        yield fake


@pytest.fixture
def config_home(isolated_user_dirs: Path) -> Path:
    """The cc-proxy config directory inside the isolated XDG tree."""
    return isolated_user_dirs / "config" / "cc-proxy"


def all_output(results: Sequence[CliResult]) -> str:
    return "".join(result.output for result in results)


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
