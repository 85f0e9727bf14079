"""`config.toml`: the user's non-secret settings (provider, URLs, default models, own aliases).

Secrets never live here (see `credentials.py`). The file is small and ours, so unknown
keys are rejected: a typo such as `defualt_model` should fail loudly, not be ignored.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from cc_nemo.errors import UserError
from cc_nemo.settings.catalog import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_MAX_OUTPUT_TOKENS,
    ModelQuirks,
    ModelSpec,
)

APP_NAME = "cc-proxy"
PROVIDERS = ("cloudflare", "openai", "anthropic")

_STRING_SETTINGS = (
    "provider",
    "gateway_url",
    "base_url",
    "default_model",
    "small_model",
    "subagent_model",
)
# ProxySettings fields a user may tune from `[proxy]`; the values are their TOML types.
PROXY_TUNABLES: dict[str, type] = {
    "first_byte_timeout": float,
    "commit_timeout": float,
    "read_timeout": float,
    "connect_timeout": float,
    "max_retries": int,
    "retry_base_delay": float,
    "ping_interval": float,
    "log_bodies": bool,
}
# `[gateway]`: AI Gateway's endpoint and per-request `cf-aig-*` settings (runtime.GatewayOptions).
# Each key: (its TOML type, the rule a value must keep, the rule as the error message says it).
GATEWAY_SETTINGS: dict[str, tuple[type, typing.Callable[[Any], bool], str]] = {
    "endpoint": (str, lambda v: v in ("compat", "workers-ai"), '"compat" or "workers-ai"'),
    "cache_ttl": (int, lambda v: 60 <= v <= 2_592_000, "seconds from 60 to 2592000 (30 days)"),
    "request_timeout_ms": (int, lambda v: v >= 1, "a positive number of milliseconds"),
    "max_attempts": (int, lambda v: 1 <= v <= 5, "an integer from 1 to 5"),
    "retry_delay_ms": (int, lambda v: 100 <= v <= 5000, "milliseconds from 100 to 5000"),
    "backoff": (
        str,
        lambda v: v in ("constant", "linear", "exponential"),
        '"constant", "linear" or "exponential"',
    ),
}
# ModelSpec fields stored under `[models.<alias>]` (alias is the table key).
_SPEC_REQUIRED = ("model",)
_SPEC_OPTIONAL: dict[str, type] = {
    "context_window": int,
    "max_output_tokens": int,
    "input_price_per_mtok": float,
    "output_price_per_mtok": float,
    "cached_input_price_per_mtok": float,
    "tools": bool,
    "reasoning": bool,
    "vision": bool,
    "note": str,
}


@dataclass
class Config:
    """Everything `config.toml` holds; every field is optional."""

    provider: str | None = None
    gateway_url: str | None = None
    base_url: str | None = None
    default_model: str | None = None
    small_model: str | None = None
    subagent_model: str | None = None
    user_models: dict[str, ModelSpec] = field(default_factory=dict)
    # Overrides for ProxySettings fields (see PROXY_TUNABLES), from the `[proxy]` table.
    proxy: dict[str, float | int | bool] = field(default_factory=dict)
    # `[models.<alias>] fallbacks = [...]`: who answers when <alias> stays out of capacity.
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    # `[gateway]`: see GATEWAY_SETTINGS.
    gateway: dict[str, str | int] = field(default_factory=dict)
    # `statusline = true`: `cc-proxy run` shows `cc-proxy statusline` (unless claude has one).
    statusline: bool | None = None


def config_dir() -> Path:
    """The per-user config directory (XDG on Linux, Application Support on macOS)."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_path() -> Path:
    return config_dir() / "config.toml"


def log_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def proxy_log_path() -> Path:
    """Where `run`/`serve` write the proxy's log (never the terminal)."""
    return log_dir() / "proxy.log"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700: it holds the secrets fallback file."""
    path.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(path, 0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, readable by the owner only (0600)."""
    ensure_private_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_toml(path: Path) -> dict[str, Any] | None:
    """Parse a TOML file; None when it does not exist; UserError naming the file otherwise."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML ({exc}); fix or delete it") from exc


def load_config(path: Path | None = None) -> Config:
    """Read `config.toml`; a missing file means all defaults."""
    path = path or config_path()
    data = read_toml(path)
    if data is None:
        return Config()
    try:
        return _config_from_toml(data)
    except _InvalidConfig as exc:
        raise UserError(f"invalid setting in {path}: {exc}; fix or delete the file") from exc


def save_config(config: Config, path: Path | None = None) -> None:
    """Write `config.toml` atomically (0600 in a 0700 directory)."""
    import tomli_w

    path = path or config_path()
    write_private_file(path, tomli_w.dumps(_config_to_toml(config)).encode("utf-8"))


class _InvalidConfig(ValueError):
    """One problem in the config data, worded for the user."""


def _config_from_toml(data: dict[str, Any]) -> Config:
    known = {*_STRING_SETTINGS, "models", "proxy", "gateway", "statusline"}
    for key in data:
        if key not in known:
            raise _InvalidConfig(f"unknown key {key!r} (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key in _STRING_SETTINGS:
        if key in data:
            values[key] = _typed(key, data[key], str)
    provider = values.get("provider")
    if provider is not None and provider not in PROVIDERS:
        raise _InvalidConfig(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    models = _typed("models", data.get("models", {}), dict)
    user_models: dict[str, ModelSpec] = {}
    fallbacks: dict[str, list[str]] = {}
    for alias, entry in models.items():
        entry = dict(_typed(f"models.{alias}", entry, dict))
        if "fallbacks" in entry:
            fallbacks[alias] = _fallbacks_from_toml(alias, entry.pop("fallbacks"))
            if not entry:
                continue  # a built-in model's fallbacks, nothing else about it changes
        user_models[alias] = _spec_from_toml(alias, entry)
    proxy = _proxy_from_toml(_typed("proxy", data.get("proxy", {}), dict))
    gateway = _gateway_from_toml(_typed("gateway", data.get("gateway", {}), dict))
    if "statusline" in data:
        values["statusline"] = _typed("statusline", data["statusline"], bool)
    return Config(
        **values, user_models=user_models, proxy=proxy, fallbacks=fallbacks, gateway=gateway
    )


def _fallbacks_from_toml(alias: str, value: Any) -> list[str]:
    where = f"models.{alias}.fallbacks"
    names = _typed(where, value, list)
    if not all(isinstance(name, str) and name for name in names):
        raise _InvalidConfig(f"{where} must be a list of model aliases")
    if alias in names:
        raise _InvalidConfig(f"{where} must not name {alias} itself")
    return list(names)


def _proxy_from_toml(table: dict[str, Any]) -> dict[str, float | int | bool]:
    result: dict[str, float | int | bool] = {}
    for key, value in table.items():
        if key not in PROXY_TUNABLES:
            known = ", ".join(sorted(PROXY_TUNABLES))
            raise _InvalidConfig(f"unknown key proxy.{key} (known: {known})")
        result[key] = _typed(f"proxy.{key}", value, PROXY_TUNABLES[key])
        if not isinstance(value, bool) and result[key] < 0:
            raise _InvalidConfig(f"proxy.{key} must not be negative")
    return result


def _gateway_from_toml(table: dict[str, Any]) -> dict[str, str | int]:
    result: dict[str, str | int] = {}
    for key, value in table.items():
        if key not in GATEWAY_SETTINGS:
            known = ", ".join(sorted(GATEWAY_SETTINGS))
            raise _InvalidConfig(f"unknown key gateway.{key} (known: {known})")
        kind, allowed, rule = GATEWAY_SETTINGS[key]
        result[key] = _typed(f"gateway.{key}", value, kind)
        if not allowed(result[key]):
            raise _InvalidConfig(f"gateway.{key} must be {rule}, not {value!r}")
    return result


def _spec_from_toml(alias: str, entry: Any) -> ModelSpec:
    where = f"models.{alias}"
    validate_alias(alias, error=_InvalidConfig)
    entry = _typed(where, entry, dict)
    known = {*_SPEC_REQUIRED, *_SPEC_OPTIONAL, "quirks"}
    for key in entry:
        if key not in known:
            raise _InvalidConfig(f"unknown key {where}.{key} (known: {', '.join(sorted(known))})")
    if "model" not in entry:
        raise _InvalidConfig(f"{where} needs a `model` (the upstream model id)")
    values: dict[str, Any] = {"model": _typed(f"{where}.model", entry["model"], str)}
    for key, kind in _SPEC_OPTIONAL.items():
        if key in entry:
            values[key] = _typed(f"{where}.{key}", entry[key], kind)
    values.setdefault("context_window", DEFAULT_CONTEXT_WINDOW)
    values.setdefault("max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS)
    quirks = _quirks_from_toml(where, _typed(f"{where}.quirks", entry.get("quirks", {}), dict))
    spec = ModelSpec(alias=alias, quirks=quirks, user_defined=True, **values)
    problem = spec_problem(spec)
    if problem:
        raise _InvalidConfig(f"{where}: {problem}")
    return spec


def spec_problem(spec: ModelSpec) -> str | None:
    """Why a user-defined spec cannot be used, or None when it is fine."""
    if not spec.model.strip():
        return "the model id is empty"
    if spec.context_window <= 0 or spec.max_output_tokens <= 0:
        return "context_window and max_output_tokens must be positive"
    if spec.max_output_tokens > spec.context_window:
        return "max_output_tokens cannot exceed context_window"
    prices = (spec.input_price_per_mtok, spec.output_price_per_mtok)
    if any(price < 0 for price in prices) or (spec.cached_input_price_per_mtok or 0) < 0:
        return "prices must not be negative"
    return None


def validate_alias(alias: str, *, error: type[Exception] = UserError) -> None:
    """Aliases are short names; a '/' is reserved for raw upstream ids like `@cf/org/model`."""
    allowed = alias[:1].isalnum() and all(ch.isalnum() or ch in "._-" for ch in alias)
    if not allowed or len(alias) > 64:
        raise error(
            f"invalid alias {alias!r}: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )


def _quirks_from_toml(where: str, table: dict[str, Any]) -> ModelQuirks:
    hints = typing.get_type_hints(ModelQuirks)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise _InvalidConfig(f"unknown key {where}.quirks.{key} (known: {known})")
        values[key] = _coerce_quirk(f"{where}.quirks.{key}", value, hints[key])
    return ModelQuirks(**values)


def _coerce_quirk(where: str, value: Any, hint: Any) -> Any:
    """Check a TOML value against a ModelQuirks annotation (bool, str, Literal, tuple[str])."""
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(options) == 1:
        return _coerce_quirk(where, value, options[0])
    if origin is Literal:
        if value not in options:
            raise _InvalidConfig(f"{where} must be one of {', '.join(map(repr, options))}")
        return value
    if origin is tuple:
        items = _typed(where, value, list)
        return tuple(_typed(where, item, str) for item in items)
    if hint in (bool, int, float, str):
        return _typed(where, value, hint)
    raise _InvalidConfig(f"{where} cannot be set from the config file")


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _typed(where: str, value: Any, kind: type) -> Any:
    """Return `value` if it has the TOML type `kind` (ints count as floats)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise _InvalidConfig(f"{where} must be an integer")
    if isinstance(value, kind):
        return value
    word = _TYPE_WORDS.get(kind, "a table" if kind is dict else "a list")
    raise _InvalidConfig(f"{where} must be {word}")


def _config_to_toml(config: Config) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in _STRING_SETTINGS:
        value = getattr(config, key)
        if value is not None:
            data[key] = value
    if config.statusline is not None:
        data["statusline"] = config.statusline
    if config.proxy:
        data["proxy"] = dict(config.proxy)
    if config.gateway:
        data["gateway"] = dict(config.gateway)
    models: dict[str, dict[str, Any]] = {
        alias: _spec_to_toml(spec) for alias, spec in config.user_models.items()
    }
    for alias, names in config.fallbacks.items():
        models.setdefault(alias, {})["fallbacks"] = list(names)
    if models:
        data["models"] = dict(sorted(models.items()))
    return data


def _spec_to_toml(spec: ModelSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": spec.model}
    for key in _SPEC_OPTIONAL:
        value = getattr(spec, key)
        if value is None or (key == "note" and not value):
            continue
        entry[key] = value
    quirks = {
        f.name: list(value) if isinstance(value, tuple) else value
        for f in fields(ModelQuirks)
        if (value := getattr(spec.quirks, f.name)) != _field_default(f) and value is not None
    }
    if quirks:
        entry["quirks"] = quirks
    return entry


def _field_default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def with_user_model(config: Config, spec: ModelSpec) -> Config:
    """A copy of `config` with `spec` added (or replacing the alias)."""
    models = dict(config.user_models)
    models[spec.alias] = replace(spec, user_defined=True)
    return replace(config, user_models=models)
