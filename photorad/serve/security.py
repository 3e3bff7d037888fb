"""API keys and start-up safety checks of the service.

Keys come from the ``PHOTORAD_API_KEY`` environment variable (one key, or several separated by
commas) and/or a keys file (one key per line, ``#`` comments). A request authenticates with the
``X-API-Key`` header; every configured key is compared with :func:`hmac.compare_digest`, without an
early exit, so the time taken does not reveal which key (or which prefix) matched.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from photorad.errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variable holding the API key(s).
ENV_VAR = "PHOTORAD_API_KEY"
#: Header carrying the key.
HEADER = "X-API-Key"
#: Shortest key accepted, in characters (short keys can be guessed).
MIN_KEY_LENGTH = 16


def _clean(keys: Sequence[str], source: str) -> list[bytes]:
    out = []
    for k in keys:
        k = k.strip()
        if not k or k.startswith("#"):
            continue
        if len(k) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"an API key from {source} is shorter than {MIN_KEY_LENGTH} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        out.append(k.encode("utf-8"))
    return out


def load_keys(
    *, keys_file: str | os.PathLike | None = None, environ: dict[str, str] | None = None
) -> list[bytes]:
    """All configured API keys (may be empty).

    Parameters
    ----------
    keys_file:
        Optional file with one key per line (blank lines and ``#`` comments ignored). A warning
        is logged when the file is readable by other users.
    environ:
        Environment to read ``PHOTORAD_API_KEY`` from (default: ``os.environ``).

    Raises
    ------
    ConfigError
        The keys file cannot be read, or a key is too short.
    """
    env = os.environ if environ is None else environ
    keys = _clean(env.get(ENV_VAR, "").split(","), f"${ENV_VAR}")
    if keys_file is not None:
        path = Path(keys_file)
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("API keys file %s is readable by other users; chmod 600 it", path)
        keys += _clean(text.splitlines(), str(path))
    return keys


def key_matches(provided: str | None, keys: Sequence[bytes]) -> bool:
    """Whether ``provided`` equals one of ``keys`` (constant time per key, no early exit)."""
    if not provided or not keys:
        return False
    given = provided.encode("utf-8", "surrogateescape")
    ok = False
    for k in keys:
        ok |= hmac.compare_digest(given, k)
    return ok


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_startup(*, host: str, keys: Sequence[bytes], insecure_no_auth: bool) -> None:
    """Refuse unsafe configurations before the server starts.

    Raises
    ------
    ConfigError
        No key is configured and ``--insecure-no-auth`` was not given, or it was given for a host
        that is not loopback.
    """
    if insecure_no_auth:
        if not is_loopback(host):
            raise ConfigError(
                f"--insecure-no-auth is only allowed on a loopback host (127.0.0.1, ::1), "
                f"not {host!r}; configure an API key instead"
            )
        if keys:
            log.warning("--insecure-no-auth given: the configured API keys are ignored")
        return
    if not keys:
        raise ConfigError(
            f"no API key configured: set ${ENV_VAR} or pass --api-keys-file FILE "
            "(or --insecure-no-auth for a loopback-only test server)"
        )
