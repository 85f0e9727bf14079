"""The one loopback check: what may be bound without --allow-remote, and which Host headers the
proxy answers (the DNS-rebinding guard)."""

from __future__ import annotations


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's loopback: localhost, 127.0.0.0/8, ::1."""
    name = host.strip().lower().strip("[]").rstrip(".")
    if name == "localhost":
        return True
    import ipaddress  # only a bind or a Host check asks; keep it off `run`'s start-up path

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_header_is_loopback(header: str | None) -> bool:
    """Whether a Host header (with any port) names loopback. A web page that rebinds its own
    name to 127.0.0.1 still sends that name, so it is refused."""
    if not header:
        return False
    host = header.strip()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return bool(name) and is_loopback(name)
