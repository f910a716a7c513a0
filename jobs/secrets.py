"""Credentials never leave a URI: userinfo and signed-URL query values are masked wherever a URI
is shown or stored (errors, logs, the manifest, the report)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query keys that carry a secret: AWS/GCS/Azure signed URLs, tokens, passwords, keys.
_SECRET_KEY = re.compile(r"signature|token|credential|secret|password|passwd|key|sig$|^sig|auth|session",
                         re.IGNORECASE)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# user:secret@ right after the scheme; the secret may hold "/" (AWS secret keys do), not "?" or "@".
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^@?#\s]*:[^@?#\s]*@")


def redact_uri(text: str) -> str:
    """`text` with every URI in it redacted (text without URIs comes back unchanged)."""
    return _URI.sub(lambda m: _redact_one(m.group(0)), text) if "://" in text else text


def _redact_one(uri: str) -> str:
    trail = len(uri) - len(uri.rstrip(".,;:)"))
    if trail:
        return _redact_one(uri[:-trail]) + uri[-trail:]
    uri = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", uri)
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{MASK}@", uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_KEY.search(k) else (_redact_one(v) if "://" in v else v))
                           for k, v in pairs], safe="*:/,@")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
