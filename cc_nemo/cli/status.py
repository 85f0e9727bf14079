"""`cc-proxy status`: every setting and where it came from, with secrets masked."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import typer

from cc_nemo.cli.common import console
from cc_nemo.errors import UserError
from cc_nemo.settings.config import Config, config_path, load_config, proxy_log_path
from cc_nemo.settings.credentials import (
    SECRET_ENV,
    SECRET_LABELS,
    SECRET_NAMES,
    get_secret,
    keyring_backend_name,
    keyring_problem,
    keyring_usable,
    mask,
    redact,
    secrets_file_path,
    secrets_file_problem,
)

CLAUDE_VERSION_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClaudeInfo:
    path: str | None
    version: str | None
    problem: str | None
    # Which lookup found it: "PATH", "CC_PROXY_CLAUDE" or "cc-proxy's data dir".
    source: str | None = None


def find_claude() -> ClaudeInfo:
    """The `claude` that `run` would start and its version (`claude --version`, with a timeout)."""
    from cc_nemo.launch.launcher import locate_claude

    try:
        found = locate_claude(None, os.environ)
    except UserError as exc:
        return ClaudeInfo(None, None, exc.message)
    path, source = found.path, found.source
    try:
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=CLAUDE_VERSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ClaudeInfo(
            path,
            None,
            f"`claude --version` gave no answer in {CLAUDE_VERSION_TIMEOUT:g} s",
            source,
        )
    except OSError as exc:
        return ClaudeInfo(path, None, f"cannot run it ({exc.strerror or exc})", source)
    first_line = (done.stdout.strip().splitlines() or [""])[0]
    if done.returncode != 0 or not first_line:
        return ClaudeInfo(path, None, f"`claude --version` failed (exit {done.returncode})", source)
    return ClaudeInfo(path, first_line, None, source)


def claude_source_label(source: str) -> str:
    """How `status` names the lookup that found claude."""
    from cc_nemo.launch.claude_install import install_dir
    from cc_nemo.launch.launcher import CLAUDE_ENV_VAR, DATA_DIR_SOURCE

    if source == CLAUDE_ENV_VAR:
        return f"${CLAUDE_ENV_VAR}"
    if source == DATA_DIR_SOURCE:
        return f"{DATA_DIR_SOURCE} ({install_dir()}; installed by `cc-proxy run`)"
    return source


def status_rows(config: Config) -> tuple[list[tuple[str, str]], str | None]:
    """(label, value) rows for the status table, and why cc-proxy cannot run (None if it can)."""
    from cc_nemo.settings.catalog import DEFAULT_MODEL_ALIAS
    from cc_nemo.settings.resolve import (
        ENV_MODEL,
        ENV_SMALL_MODEL,
        ENV_SUBAGENT_MODEL,
        account_id,
        base_url,
        build_catalog,
        gateway_url,
        model_choice,
        provider_kind,
        require_model,
        resolve_provider,
    )

    path = config_path()
    rows = [("Config file", f"{path}" + ("" if path.exists() else " (not created yet)"))]
    kind = provider_kind(config)
    rows.append(("Provider", f"{kind.value} ({kind.source})"))
    url = gateway_url(config) if kind.value == "cloudflare" else base_url(config)
    label = "Gateway URL" if kind.value == "cloudflare" else "Base URL"
    rows.append((label, f"{url.value} ({url.source})" if url.value else "missing"))
    if kind.value == "cloudflare":
        rows.append(("Account id", account_id(config) or "-"))
    rows.extend(gateway_rows(config, kind.value or "", url.value))
    catalog = build_catalog(config)
    for title, env_name, configured, fallback in (
        ("Default model", ENV_MODEL, config.default_model, DEFAULT_MODEL_ALIAS),
        ("Small model", ENV_SMALL_MODEL, config.small_model, "same as the default model"),
        ("Subagent model", ENV_SUBAGENT_MODEL, config.subagent_model, "as Claude Code asks"),
    ):
        choice = model_choice(None, env_name, configured)
        if choice.value is None:
            rows.append((title, f"{fallback} (default)"))
            continue
        try:
            upstream = require_model(catalog, choice.value).model
            rows.append((title, f"{choice.value} → {upstream} ({choice.source})"))
        except UserError:
            rows.append((title, f"{choice.value} (unknown alias!) ({choice.source})"))
    sources = {}
    for name in SECRET_NAMES:
        value, source = get_secret(name)
        sources[name] = source
        shown = f"{mask(value)} ({source})" if value else "missing"
        if source == "env":
            shown += f" [{SECRET_ENV[name]}]"
        elif value and name == "cloudflare_api_token" and sources["aig_token"] == "env":
            # resolve_provider takes both Cloudflare tokens from the environment then.
            shown += " (not used: CF_AIG_TOKEN is set, so only CLOUDFLARE_API_TOKEN counts)"
        rows.append((SECRET_LABELS[name], shown))
    backend = keyring_backend_name()
    rows.append(("Keyring backend", backend + ("" if keyring_usable() else " (not usable)")))
    if keyring_usable() and (problem := keyring_problem()):
        rows.append(("Keyring error", problem))
    file_path = secrets_file_path()
    if file_path.exists():
        rows.append(("Secrets file", secrets_file_problem() or f"{file_path} (mode 0600)"))
    claude = find_claude()
    if claude.problem:
        rows.append(("claude", f"{claude.path or '-'}: {claude.problem}"))
    else:
        rows.append(("claude", f"{claude.path} ({claude.version})"))
    if claude.source:
        rows.append(("claude found in", claude_source_label(claude.source)))
    rows.append(("Proxy log", str(proxy_log_path())))
    try:
        resolve_provider(config)
    except UserError as exc:
        return rows, exc.message
    return rows, claude.problem and f"claude {claude.problem}"


def gateway_rows(config: Config, kind: str, url: str | None) -> list[tuple[str, str]]:
    """The AI Gateway path and the `cf-aig-*` settings sent, for an AI Gateway provider."""
    from cc_nemo.settings.resolve import gateway_endpoint, gateway_options
    from cc_nemo.settings.runtime import GATEWAY_ENDPOINT_PATHS, ProviderSettings

    options = gateway_options(config)
    provider = ProviderSettings(kind, url or "", gateway=options)  # type: ignore[arg-type]
    rows = []
    if kind == "cloudflare":
        endpoint = gateway_endpoint(config)
        path = GATEWAY_ENDPOINT_PATHS[endpoint.value]  # type: ignore[index]
        ids = "workers-ai/@cf/…" if endpoint.value == "compat" else "@cf/…"
        rows.append(
            ("Gateway endpoint", f"{endpoint.value} (…{path}, model ids {ids}) ({endpoint.source})")
        )
    if provider.is_ai_gateway:
        configured = "; ".join(f"{name}: {value}" for name, value in options.headers().items())
        sent = "cf-aig-metadata (request id, Claude Code session, model)"
        rows.append(("Gateway headers", f"{sent}; {configured} (config)" if configured else sent))
    return rows


def status() -> None:
    """Show each setting and secret with its source (env, keyring, file, config), masked.

    Exits with 1 when cc-proxy cannot run yet (no credentials, no claude).
    """
    from rich.table import Table

    config = load_config()
    rows, problem = status_rows(config)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, redact(value))
    out = console()
    out.print(table)
    if problem:
        out.print(f"\nNot ready: {redact(problem)}")
        raise typer.Exit(1)
    out.print("\nReady.")


def register(app: typer.Typer) -> None:
    app.command()(status)
