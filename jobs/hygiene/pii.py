"""Find and redact personal data in text, offline: regexes propose candidates, checksums and
phonenumbers confirm them, cheap per-kind pre-checks keep ordinary rows fast."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable

import phonenumbers

from jobs.hygiene import pii_checks as checks

KINDS: tuple[str, ...] = ("email", "phone", "credit_card", "iban", "ip", "cn_id", "us_ssn", "secret")
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}
MODES = ("mask", "pseudonymize")


@dataclass(frozen=True)
class Found:
    """One detected value: text[start:end] is the value, `kind` one of KINDS."""

    kind: str
    start: int
    end: int


# Full-width digits, @ and + read as ASCII; a 1:1 mapping, so offsets into the original stay valid.
_FULLWIDTH = {0xFF10 + i: 0x30 + i for i in range(10)} | {0xFF20: 0x40, 0xFF0B: 0x2B}
_NOT_DIGIT = re.compile(r"[^0-9]")

# `\b` treats CJK characters as word characters, so every boundary below is an explicit lookaround.
_DIGIT = re.compile(r"[0-9]")
# Seven digits with at most two separators between each: the least any digit-based kind needs.
_DIGIT_RUN = re.compile(r"[0-9](?:[ ().\-/]{0,2}[0-9]){6}")

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9_%+-])[A-Za-z0-9_%+-][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])"
)
_CARD = re.compile(
    r"(?<![0-9+])(?:[0-9]{13,19}"  # after "+" digits are a phone's country code
    # 4-4-4-4(-3); a last short group is not taken from a number that goes on after it
    r"|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}(?:\1[0-9]{1,3}(?![ -]?[0-9]))?"
    r"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5})(?![0-9])"  # Amex 4-6-5, Diners 4-6-4
)
_IBAN = re.compile(
    r"(?<![0-9A-Za-z])[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![0-9A-Za-z])"
)
_CN_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_SSN = re.compile(r"(?<![0-9])(?<![0-9]-)[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}(?![0-9]|-[0-9])")
_SSN_BARE = re.compile(r"(?<![0-9])[0-9]{9}(?![0-9])")
_SSN_CONTEXT = re.compile(r"(?<![a-z])(?:ssn|social security)(?![a-z])|社会安全|社会保障", re.IGNORECASE)
_SSN_CONTEXT_CHARS = 30
_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:]|\.[0-9])")
# Chinese mobiles (3-4-4, optional +86 / 0086 / "86 ") and landlines with an area code (010-12345678).
_CN_MOBILE = re.compile(r"(?<![0-9+])(?:(?:\+86|0086)[ -]?|86 )?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])")
_CN_LANDLINE = re.compile(r"(?<![0-9])0(?:10|2[0-9]|[3-9][0-9]{2})-[1-9][0-9]{6,7}(?![0-9])")
_MIN_PHONE_DIGITS = 7

_TOKEN = r"[A-Za-z0-9_-]"
# (substrings one of which must be present, pattern, group holding the secret)
_SECRETS: tuple[tuple[tuple[str, ...], re.Pattern[str], int], ...] = (
    # A credential in a URL query or fragment: only the value after "=" is the secret.
    (("=",), re.compile(
        r"(?<=[?&;#])(?:[A-Za-z]+[_-])*(?i:access_token|api_key|apikey|token|key|sig|signature|password|passwd|secret)"
        r"=([A-Za-z0-9._~%+/=-]{3,}[A-Za-z0-9_~%+/=-])"), 1),
    # scheme://user:password@host: only the password.
    (("://",), re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:?#]+:([^\s/@?#]+)@"), 1),
    (("AKIA", "ASIA"), re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"), 0),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"), 0),
    (("xox",), re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"), 0),
    (("hf_",), re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])"), 0),  # Hugging Face
    (("sk-",), re.compile(rf"(?<!{_TOKEN})sk-{_TOKEN}{{20,}}"), 0),
    (("AIza",), re.compile(rf"(?<!{_TOKEN})AIza{_TOKEN}{{35}}(?!{_TOKEN})"), 0),
    (("k_live_",), re.compile(r"(?<![A-Za-z0-9])[rs]k_live_[0-9A-Za-z]{16,}"), 0),
    (("eyJ",), re.compile(rf"(?<!{_TOKEN})eyJ{_TOKEN}{{4,}}\.{_TOKEN}{{4,}}\.{_TOKEN}{{4,}}"), 0),
    # Bearer <token>: the token, which must hold a digit so "bearer of bad news" stays prose.
    (("earer",), re.compile(r"(?<![A-Za-z])(?i:bearer)[ \t]+((?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{16,}=*)"), 1),
    (("-----BEGIN",), re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----", re.DOTALL), 0),
)

# Overlaps: a secret always wins and a phone always loses (it is the loosest match); between the
# others the longer span wins, and on a tie the more specific kind in this order.
_TIER = {kind: 1 for kind in KINDS} | {"secret": 0, "phone": 2}
_PRIORITY = {k: i for i, k in enumerate(("secret", "email", "cn_id", "credit_card", "iban", "us_ssn", "ip", "phone"))}
_DIGIT_KINDS = ("phone", "credit_card")


class Detector:
    """Finds the chosen kinds of personal data; values in `allow` are never reported."""

    def __init__(self, kinds: Iterable[str] = KINDS, allow: Iterable[str] = ()):
        self.kinds = frozenset([kinds] if isinstance(kinds, str) else kinds)
        unknown = sorted(self.kinds - set(KINDS))
        if unknown:
            raise ValueError(f"unknown PII kind(s) {', '.join(unknown)}; known kinds: {', '.join(KINDS)}")
        self._allow = {value.strip() for value in ([allow] if isinstance(allow, str) else allow)}
        # Phones and cards are written many ways; an allowed one matches by its digits too.
        self._allow_digits = {d for d in (_NOT_DIGIT.sub("", v.translate(_FULLWIDTH)) for v in self._allow) if d}

    def find(self, text: str) -> list[Found]:
        """Every detected value, sorted by start, none overlapping."""
        if not text:
            return []
        scan = text if text.isascii() else text.translate(_FULLWIDTH)
        kinds, hits = self.kinds, []
        if "secret" in kinds:
            _find_secrets(scan, hits)
        if "email" in kinds and "@" in scan:
            hits.extend(Found("email", m.start(), m.end()) for m in _EMAIL.finditer(scan))
        if _DIGIT.search(scan) is not None:
            if "ip" in kinds:
                _find_ips(scan, hits)
            if _DIGIT_RUN.search(scan) is not None:
                _find_numbers(scan, kinds, hits)
        return self._resolve(text, hits) if hits else []

    def _allowed(self, text: str, hit: Found) -> bool:
        value = text[hit.start:hit.end].strip()
        if value in self._allow:
            return True
        return hit.kind in _DIGIT_KINDS and _NOT_DIGIT.sub("", value.translate(_FULLWIDTH)) in self._allow_digits

    def _resolve(self, text: str, hits: list[Found]) -> list[Found]:
        hits.sort(key=lambda h: (_TIER[h.kind], h.start - h.end, _PRIORITY[h.kind], h.start))
        kept: list[Found] = []
        for hit in hits:
            if self._allow and self._allowed(text, hit):
                continue
            if all(hit.end <= k.start or hit.start >= k.end for k in kept):
                kept.append(hit)
        kept.sort(key=lambda h: h.start)
        return kept


def _find_secrets(scan: str, hits: list[Found]) -> None:
    for hints, pattern, group in _SECRETS:
        if any(hint in scan for hint in hints):
            hits.extend(Found("secret", m.start(group), m.end(group)) for m in pattern.finditer(scan))


def _find_ips(scan: str, hits: list[Found]) -> None:
    if "." in scan:
        hits.extend(Found("ip", m.start(), m.end()) for m in _IPV4.finditer(scan) if checks.ipv4_ok(m.group()))
    if scan.count(":") >= 2:
        hits.extend(Found("ip", m.start(), m.end()) for m in _IPV6.finditer(scan) if checks.ipv6_ok(m.group()))


def _find_numbers(scan: str, kinds: frozenset[str], hits: list[Found]) -> None:
    """The kinds that need a run of seven or more digits: cards, IBANs, ids, SSNs, phones."""
    # A shape that fails its checksum is still some other identifier, and its digit groups are not
    # values of their own: no number inside a failed IBAN, no phone inside a failed card (16+ digits,
    # longer than any phone) or id, where phonenumbers would otherwise find a valid number.
    no_number: list[tuple[int, int]] = []
    for m in _IBAN.finditer(scan):
        end = _iban_end(m.group())
        if not end:
            no_number.append(m.span())
        elif "iban" in kinds:
            hits.append(Found("iban", m.start(), m.start() + end))
    no_phone = list(no_number)
    for m in _CARD.finditer(scan):
        digits = _NOT_DIGIT.sub("", m.group())
        if not checks.card_ok(digits):
            if len(digits) >= 16:
                no_phone.append(m.span())
        elif "credit_card" in kinds and _outside(m.span(), no_number):
            hits.append(Found("credit_card", m.start(), m.end()))
    for m in _CN_ID.finditer(scan):
        if not checks.cn_id_ok(m.group()):
            no_phone.append(m.span())
        elif "cn_id" in kinds:
            hits.append(Found("cn_id", m.start(), m.end()))
    if "us_ssn" in kinds:
        for m in _SSN.finditer(scan):
            if checks.ssn_ok(_NOT_DIGIT.sub("", m.group())) and _outside(m.span(), no_number):
                hits.append(Found("us_ssn", m.start(), m.end()))
        for m in _SSN_BARE.finditer(scan):
            before = scan[max(0, m.start() - _SSN_CONTEXT_CHARS):m.start()]
            if _SSN_CONTEXT.search(before) and checks.ssn_ok(m.group()):
                hits.append(Found("us_ssn", m.start(), m.end()))
    if "phone" in kinds:
        hits.extend(hit for hit in _find_phones(scan) if _outside((hit.start, hit.end), no_phone))


def _outside(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return all(span[1] <= start or span[0] >= end for start, end in spans)


def _iban_end(candidate: str) -> int:
    """Length of the valid IBAN at the start of `candidate` (0 if none): a spaced candidate may have
    taken a following upper-case word as one more group, so it is cut to the country's length."""
    compact = candidate.replace(" ", "")
    expected = checks.IBAN_LENGTHS.get(compact[:2])
    if expected and len(compact) > expected:
        seen = 0
        for i, ch in enumerate(candidate):
            seen += ch != " "
            if seen == expected:
                candidate, compact = candidate[:i + 1], compact[:expected]
                break
    return len(candidate) if checks.iban_ok(compact) else 0


def _find_phones(scan: str) -> list[Found]:
    found = [Found("phone", m.start(), m.end()) for pattern in (_CN_MOBILE, _CN_LANDLINE)
             for m in pattern.finditer(scan)]
    # "+" numbers parse under any region; national numbers need one. Chinese national formats are
    # only looked for in text that is not plain ASCII, to spare English rows a second pass.
    for region in ("US",) if scan.isascii() else ("US", "CN"):
        for match in phonenumbers.PhoneNumberMatcher(scan, region, leniency=phonenumbers.Leniency.VALID):
            span = _balanced(match.raw_string)
            if span and len(_NOT_DIGIT.sub("", match.raw_string)) >= _MIN_PHONE_DIGITS:
                found.append(Found("phone", match.start + span[0], match.start + span[1]))
    return found


def _balanced(value: str) -> tuple[int, int] | None:
    """The part of a matched phone with balanced brackets: phonenumbers takes a bracket of the
    surrounding text as the number's own ("（+55 11..." or "6/7）815674039"), which is trimmed
    off at either end, and makes it no number when it sits inside."""
    start, end = 0, len(value)
    opened = value.count("(") + value.count("\uff08") - value.count(")") - value.count("\uff09")
    while opened > 0 and value[start] in "(\uff08":
        start, opened = start + 1, opened - 1
    while opened < 0 and value[end - 1] in ")\uff09":
        end, opened = end - 1, opened + 1
    return (start, end) if opened == 0 else None


def redact(text: str, found: list[Found], mode: str = "mask", salt: bytes = b"") -> str:
    """`text` with each found value replaced: by its kind's placeholder ("mask"), or by a keyed hash
    of its normalized form ("pseudonymize"), so one value reads the same in every row and run."""
    if mode not in MODES:
        raise ValueError(f"unknown redaction mode {mode!r}; use one of {', '.join(MODES)}")
    parts, pos = [], 0
    for hit in sorted(found, key=lambda h: h.start):
        if hit.start < pos:  # overlapping input: the earlier value already covers this one
            continue
        value = text[hit.start:hit.end]
        parts.append(text[pos:hit.start])
        parts.append(PLACEHOLDERS.get(hit.kind, f"<{hit.kind.upper()}>") if mode == "mask"
                     else pseudonym(hit.kind, value, salt))
        pos = hit.end
    parts.append(text[pos:])
    return "".join(parts)


def pseudonym(kind: str, value: str, salt: bytes = b"") -> str:
    """`<KIND_h>`, h the first 10 hex digits of HMAC-SHA256(salt, kind NUL normalized value)."""
    message = f"{kind}\0{normalize(kind, value)}".encode()
    return f"<{kind.upper()}_{hmac.new(salt, message, hashlib.sha256).hexdigest()[:10]}>"


def normalize(kind: str, value: str) -> str:
    """The form two spellings of one value share: digits for numbers, upper compact IBAN, lower-case
    email, the canonical text of an IP address; secrets as they are."""
    value = value.strip().translate(_FULLWIDTH)
    if kind in ("phone", "credit_card", "us_ssn", "cn_id"):  # an id's X check character follows from its digits
        return _NOT_DIGIT.sub("", value)
    if kind == "iban":
        return value.replace(" ", "").upper()
    if kind == "email":
        return value.lower()
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if kind not in KINDS:  # a name or address a model found: the same however it is cased or spaced
        return " ".join(value.split()).casefold()
    return value
