"""Ray token auth on the client side, read the way Ray itself reads it (no Ray import).

Ray's JobSubmissionClient only sends a token when the *client* process has RAY_AUTH_MODE=token;
we find the token ourselves and pass it as an Authorization header, so users set nothing extra.
Precedence, as in Ray: RAY_AUTH_TOKEN, then the file named by RAY_AUTH_TOKEN_PATH, then
~/.ray/auth_token.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ray_cluster.errors import ClusterError


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for error messages (never the value itself)


def default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def find_token() -> Token | None:
    """The token this process would use, or None when there is none."""
    value = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if value:
        return Token(value, "RAY_AUTH_TOKEN")
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named:
        # Ray aborts on an unreadable RAY_AUTH_TOKEN_PATH rather than falling back; so do we.
        try:
            value = Path(named).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ClusterError(f"RAY_AUTH_TOKEN_PATH={named}: cannot read the token file: {exc.strerror}") from None
        if not value:
            raise ClusterError(f"RAY_AUTH_TOKEN_PATH={named}: the token file is empty")
        return Token(value, named)
    path = default_token_path()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Token(value, str(path)) if value else None


def auth_headers() -> dict[str, str]:
    """Authorization header for the dashboard's HTTP API ({} without a token: the cluster decides)."""
    token = find_token()
    return {"Authorization": f"Bearer {token.value}"} if token else {}


def ensure_token() -> tuple[Token, bool]:
    """The token for a new local cluster: the existing one, or a fresh one saved to
    ~/.ray/auth_token (mode 0600) so later clients find it. Returns (token, created)."""
    token = find_token()
    if token:
        return token, False
    path = default_token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return Token(value, str(path)), True
