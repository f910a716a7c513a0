"""Checksum and structure checks for personal-data candidates: a regex only proposes a value, these
decide whether it is really a card, an IBAN, a Chinese id, an SSN or an IP address."""

from __future__ import annotations

import datetime
import ipaddress

# (prefix range low, high, allowed lengths): the issuer prefixes of the major card brands. Lengths
# 17 and 18 are left out: barely issued, and 18 digits is the length of a Chinese resident id.
_CARD_BRANDS: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 19})),  # Discover
    (65, 65, frozenset({16, 19})),
    (644, 649, frozenset({16, 19})),
    (62, 62, frozenset({16, 19})),  # UnionPay
    (3528, 3589, frozenset({16, 19})),  # JCB
    (36, 36, frozenset({14, 16, 19})),  # Diners Club
    (38, 38, frozenset({14, 16, 19})),
    (300, 305, frozenset({14, 16, 19})),
)

# IBAN lengths for the common countries; any other country code may be 15-34 characters long.
IBAN_LENGTHS = {
    "DE": 22, "GB": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "CH": 21, "AT": 20,
    "PL": 28, "SE": 24, "IE": 22, "PT": 25, "DK": 18, "FI": 18, "NO": 15, "LU": 20, "CZ": 24,
}

CN_PROVINCES = frozenset(
    [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66),
     71, 81, 82, 83, 91]
)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"

# Numbers printed in advertisements and documentation, never issued to a person.
_SSN_INVALID = frozenset({"078051120", "219099999"})


def luhn_ok(digits: str) -> bool:
    """The Luhn mod-10 checksum that every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_ok(digits: str) -> bool:
    """A plausible card number: Luhn-valid, a known brand prefix with that brand's length."""
    n = len(digits)
    if not 13 <= n <= 19 or digits.count(digits[0]) == n:
        return False
    for low, high, lengths in _CARD_BRANDS:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and n in lengths:
            return luhn_ok(digits)
    return False


def iban_length_ok(country: str, length: int) -> bool:
    expected = IBAN_LENGTHS.get(country)
    return length == expected if expected else 15 <= length <= 34


def iban_ok(compact: str) -> bool:
    """An IBAN (upper case, no spaces): country letters, check digits, the right length, mod 97 == 1."""
    if not (compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum()):
        return False
    if not iban_length_ok(compact[:2], len(compact)):
        return False
    return iban_mod97(compact) == 1


def iban_mod97(compact: str) -> int:
    """ISO 13616 remainder: the first four characters moved to the end, letters as 10..35."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97


def cn_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a Chinese resident id."""
    return _CN_CHECK[sum(int(d) * w for d, w in zip(first17, _CN_WEIGHTS)) % 11]


def cn_id_ok(value: str) -> bool:
    """An 18-character Chinese resident id: province, real birth date, and check character."""
    if len(value) != 18 or not value[:17].isdigit() or int(value[:2]) not in CN_PROVINCES:
        return False
    year, month, day = int(value[6:10]), int(value[10:12]), int(value[12:14])
    today = datetime.date.today()
    if not 1900 <= year <= today.year:
        return False
    try:
        if datetime.date(year, month, day) > today:
            return False
    except ValueError:
        return False
    return cn_check_char(value[:17]) == value[17].upper()


def ssn_ok(digits: str) -> bool:
    """A US social security number as issued: no zero blocks, no 666 or 9xx area, not a famous fake."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in _SSN_INVALID


def ipv4_ok(value: str) -> bool:
    """Four octets 0-255 without leading zeros (ipaddress refuses those)."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def ipv6_ok(value: str) -> bool:
    """A full or compressed IPv6 address; a decimal digit is required so words like "add::bed" pass."""
    if value.count(":") < 2 or not any(ch.isdigit() for ch in value):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True
