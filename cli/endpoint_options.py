"""Checks on where requests go and with which key (the CLI's side of the security rules)."""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from pipeline.core.config import Secret
from pipeline.core.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEADER_SAFE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, as an Authorization header needs


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked_base_url(url: str, allow_insecure_http: bool) -> str:
    """A base URL we are willing to send a key to, or a ConfigError saying why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} must look like https://host/v1")
    _check_port(url)
    if parts.username or parts.password:
        raise ConfigError("base URL must not contain a user name or password; use the key variable")
    if parts.scheme == "http" and not (is_loopback(parts.hostname) or allow_insecure_http):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: the key and prompts would travel "
            "unencrypted; use https, or pass --allow-insecure-http if this network is trusted"
        )
    return url.rstrip("/")


def _check_port(url: str) -> None:
    """A port that cannot be connected to is a typo, not an outage to wait out."""
    try:
        port = urlsplit(url).port
    except ValueError:  # not a number, or beyond 65535
        port = 0
    if port == 0:
        raise ConfigError(
            f"base URL {url!r} has no valid port: give a number from 1 to 65535, "
            "or none for the scheme's default"
        )


def api_key_from_env(variable: str, base_url: str) -> Secret | None:
    if not ENV_NAME.fullmatch(variable):
        # Never echo it: a key pasted here by mistake must not reach the terminal.
        raise ConfigError(
            "--api-key-env takes the name of an environment variable (letters, digits "
            "and _), not the key itself"
        )
    value = os.environ.get(variable, "").strip()
    if value and not HEADER_SAFE.fullmatch(value):
        raise ConfigError(f"the key in {variable} contains spaces or control characters")
    if value:
        return Secret(value)
    host = urlsplit(base_url).hostname or ""
    if is_loopback(host):
        return None  # local servers (sluice sim, vLLM, Ollama) usually need no key
    raise ConfigError(
        f"no API key: set the environment variable {variable} "
        "(or name another one with --api-key-env); keys are never taken from the command line"
    )
