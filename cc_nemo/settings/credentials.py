"""Secrets: environment first, then the OS keyring, then a 0600 file when no keyring works.

Every function reports where a secret came from and none prints one: `mask` is the only
way a secret is shown, and `redact` scrubs known secrets from any text before it reaches
the user.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from cc_nemo.errors import UserError
from cc_nemo.settings.config import config_dir, read_toml, write_private_file

SecretName = Literal["aig_token", "cloudflare_api_token", "api_key"]
SecretSource = Literal["env", "keyring", "file", "missing"]
SECRET_NAMES: tuple[SecretName, ...] = get_args(SecretName)
KEYRING_SERVICE = "cc-proxy"
SECRET_ENV: dict[SecretName, str] = {
    "aig_token": "CF_AIG_TOKEN",
    "cloudflare_api_token": "CLOUDFLARE_API_TOKEN",
    "api_key": "CC_PROXY_API_KEY",
}
SECRET_LABELS: dict[SecretName, str] = {
    "aig_token": "AI Gateway token",
    "cloudflare_api_token": "Cloudflare API token",
    "api_key": "API key",
}
_MASK = "••••"
# Every secret value this process has seen, so `redact` can scrub it from any message.
_seen_secrets: set[str] = set()
_last_keyring_error: str | None = None


def secrets_file_path() -> Path:
    """The fallback store used only when the OS keyring is unusable."""
    return config_dir() / "secrets.toml"


def get_secret(
    name: SecretName, *, look_in: tuple[SecretSource, ...] = ("env", "file", "keyring")
) -> tuple[str | None, SecretSource]:
    """The secret's value and where it came from; the environment beats stored values.

    `look_in` narrows the search: an optional secret is looked up only where its required
    companion was found, so a machine without a keyring never pays the keyring start-up."""
    from_env = os.environ.get(SECRET_ENV[name], "").strip() if "env" in look_in else ""
    if from_env:
        _seen_secrets.add(from_env)
        return from_env, "env"
    return stored_secret(name, use_keyring="keyring" in look_in, use_file="file" in look_in)


def stored_secret(
    name: SecretName, *, use_keyring: bool = True, use_file: bool = True
) -> tuple[str | None, SecretSource]:
    """The stored value, ignoring the environment.

    The file is read first: it only holds secrets the keyring could not take (set_secret
    removes a file copy once the keyring has one), and reading it spares `cc-proxy run`
    the ~0.2 s keyring start-up on machines without a keyring.
    """
    value = _read_secrets_file().get(name) if use_file else None
    if value:
        _seen_secrets.add(value)
        return value, "file"
    value = _keyring_get(name) if use_keyring else None
    if value:
        _seen_secrets.add(value)
        return value, "keyring"
    return None, "missing"


def set_secret(name: SecretName, value: str) -> Literal["keyring", "file"]:
    """Store a secret in the keyring, or in the 0600 file when no keyring backend works."""
    value = validate_secret(name, value)
    _seen_secrets.add(value)
    if keyring_usable() and _keyring_set(name, value):
        _write_secrets_file({k: v for k, v in _read_secrets_file().items() if k != name})
        return "keyring"
    secrets = _read_secrets_file()
    secrets[name] = value
    _write_secrets_file(secrets)
    return "file"


def delete_secret(name: SecretName) -> None:
    """Remove a stored secret from both stores (environment variables are not ours to touch).

    UserError when the keyring may still hold it (locked, access denied): a logout that
    leaves a token behind must not look like one that worked."""
    problem = _keyring_delete(name)
    secrets = _read_secrets_file()
    if name in secrets:
        del secrets[name]
        _write_secrets_file(secrets)
    if problem is not None:
        raise UserError(
            f"could not remove the {SECRET_LABELS[name]} from the OS keyring ({problem}); "
            "it is still stored there: unlock the keyring and run `cc-proxy logout` again"
        )


def validate_secret(name: SecretName, value: str) -> str:
    """Strip a pasted token and reject what could never be a valid header value."""
    value = value.strip()
    label = SECRET_LABELS[name]
    if not value:
        raise UserError(f"the {label} is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UserError(f"the {label} contains spaces or control characters; paste it again")
    # Known to redact() from the moment it is typed: `login` verifies before it stores.
    _seen_secrets.add(value)
    return value


def mask(value: str | None) -> str:
    """Show that a secret exists; the last 4 characters only when it is long enough to spare them."""
    if not value:
        return "-"
    return _MASK + value[-4:] if len(value) >= 12 else _MASK * 2


def redact(text: str) -> str:
    """Replace every secret this process knows of (and any in the environment) in `text`."""
    known = set(_seen_secrets)
    known.update(v.strip() for env in SECRET_ENV.values() if (v := os.environ.get(env, "")))
    for secret in sorted(known, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, _MASK)
    return text


def keyring_backend_name() -> str:
    """A readable name of the keyring backend in use, for `cc-proxy status`."""
    try:
        import keyring

        backend = keyring.get_keyring()
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    inner = getattr(backend, "backends", None)
    if inner:
        name += (
            " (" + ", ".join(f"{type(b).__module__}.{type(b).__qualname__}" for b in inner) + ")"
        )
    return name


def keyring_usable() -> bool:
    """False when keyring fell back to its fail/null backend (headless Linux, containers)."""
    try:
        import keyring
        from keyring.backends import fail, null

        backend = keyring.get_keyring()
    except Exception as exc:
        _remember_keyring_error(exc)
        return False
    return not isinstance(backend, (fail.Keyring, null.Keyring))


def keyring_problem() -> str | None:
    """The last keyring error seen by this process, for troubleshooting output."""
    return _last_keyring_error


def secrets_file_problem() -> str | None:
    """Why the fallback file is unsafe (readable by others), or None."""
    path = secrets_file_path()
    if os.name != "posix" or not path.exists():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return f"{path} has mode {mode:04o}; run `chmod 600 {path}`"
    return None


def _remember_keyring_error(exc: Exception) -> None:
    global _last_keyring_error
    _last_keyring_error = redact(f"{type(exc).__name__}: {exc}")


def _keyring_get(name: SecretName) -> str | None:
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, name)
    except Exception as exc:  # any backend failure means "not available here"
        _remember_keyring_error(exc)
        return None


def _keyring_set(name: SecretName, value: str) -> bool:
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, name, value)
    except Exception as exc:  # locked or broken backends fall back to the file
        _remember_keyring_error(exc)
        return False
    return True


def _keyring_delete(name: SecretName) -> str | None:
    """None once the keyring does not hold `name`; else why it may still hold it."""
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, name)
    except Exception as exc:
        if not keyring_usable():
            return None  # no keyring on this machine: nothing can be stored in it
        try:
            if keyring.get_password(KEYRING_SERVICE, name) is None:
                return None  # most backends' PasswordDeleteError means "nothing stored"
        except Exception:
            pass  # cannot even look: the delete's own error is the honest answer
        _remember_keyring_error(exc)
        return redact(f"{type(exc).__name__}: {exc}")
    return None


def _read_secrets_file() -> dict[str, str]:
    data = read_toml(secrets_file_path()) or {}
    return {k: v for k, v in data.items() if k in SECRET_NAMES and isinstance(v, str) and v}


def _write_secrets_file(secrets: dict[str, str]) -> None:
    path = secrets_file_path()
    if not secrets:
        path.unlink(missing_ok=True)
        return
    import tomli_w

    write_private_file(path, tomli_w.dumps(secrets).encode("utf-8"))
