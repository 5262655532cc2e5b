"""Strict configuration helpers: every option comes from the environment (or the optional
config file named by ``PACS_CONFIG``), and a bad value stops start-up with a clear message
instead of surfacing later as a strange failure."""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# PS3.5 6.2: AE VR is 1-16 characters, no backslash, no control characters, not all spaces.
AE_TITLE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def load_config_file(path: str | None) -> None:
    """Read ``KEY=VALUE`` lines from the config file into the environment.

    Values already present in the environment win, so a deployment can override one
    option without editing the file."""
    if not path:
        return
    config_path = Path(path)
    if not config_path.is_file():
        raise ImproperlyConfigured(f"PACS_CONFIG={path}: no such file")
    for number, raw_line in enumerate(config_path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ImproperlyConfigured(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(key, value)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected true/false, yes/no, on/off or 1/0")


def env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={value}: must be between {minimum} and {maximum}")
    return value


def env_port(name: str, default: int, *, allow_zero: bool = False) -> int:
    return env_int(name, default, minimum=0 if allow_zero else 1, maximum=65535)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    normalized = value.upper()
    for choice in choices:
        if choice.upper() == normalized:
            return choice
    raise ImproperlyConfigured(f"{name}={value!r}: expected one of {', '.join(choices)}")


def env_ae_title(name: str, default: str) -> str:
    value = os.environ.get(name, default)
    if not AE_TITLE_RE.match(value) or not value.strip():
        raise ImproperlyConfigured(
            f"{name}={value!r}: an AE title is 1-16 printable characters, no backslash, "
            "not all spaces"
        )
    return value.strip()


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    path = Path(raw).expanduser() if raw else default
    return path.resolve()


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_amqp_url(name: str, default: str) -> dict[str, object]:
    """``amqp://user:password@host:port/vhost`` as AmqpSettings fields. The vhost is
    percent-decoded (``%2F`` is ``/``); no path, or ``/``, is the vhost ``/``."""
    from urllib.parse import unquote, urlsplit

    raw = os.environ.get(name, "").strip() or default
    try:
        parts = urlsplit(raw)
        port = parts.port or 5672
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: not an amqp:// URL: {exc}") from None
    if parts.scheme != "amqp" or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name}: expected amqp://user:password@host:port/vhost, got scheme "
            f"{parts.scheme!r} and host {parts.hostname!r}"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return {
        "host": parts.hostname,
        "port": port,
        "virtual_host": unquote(path) or "/",
        "user": unquote(parts.username or "guest"),
        "password": unquote(parts.password or "guest"),
    }
