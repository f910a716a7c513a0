"""Deterministic corpora for PII detection: real English and Chinese sentences with freshly generated,
checksum-valid values planted in them, decoys with numbers that are not personal data, and clean text.
The checksums are computed here independently of the detector, so the two check each other."""

from __future__ import annotations

import datetime
import ipaddress
import random
import string
import unicodedata
from functools import lru_cache
from pathlib import Path

import phonenumbers
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
EDA = Path(__file__).resolve().parents[3] / "shared" / "data" / "eda"
ZH_MESSAGES = ROOT / "sample_data" / "multilingual" / "zh_mixed.parquet"
EN_SETS = ("sst2", "subj", "cr", "trec", "pc")
ZH_SHARE = 0.3  # share of rows built on a Chinese sentence

ALNUM = string.ascii_letters + string.digits
TOKEN = ALNUM + "_-"


@lru_cache(maxsize=1)
def english_sentences() -> tuple[str, ...]:
    """Real English sentences from the EDA sets beside the project (the committed SST-2 sample if absent)."""
    rows: list[str] = []
    for name in EN_SETS:
        path = EDA / "3_standard" / name / "train_orig.txt"
        if path.exists():
            rows += [line.partition("\t")[2].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    if not rows:
        rows = pq.read_table(ROOT / "sample_data" / "reviews" / "sst2.parquet")["text"].to_pylist()
    return tuple(row for row in rows if len(row.split()) >= 3)


@lru_cache(maxsize=1)
def chinese_sentences() -> tuple[str, ...]:
    """Real zh_CN interface messages (gettext catalogues of common Linux packages)."""
    return tuple(text.strip() for text in pq.read_table(ZH_MESSAGES)["text"].to_pylist() if text.strip())


def _chars(rng: random.Random, alphabet: str, k: int) -> str:
    return "".join(rng.choices(alphabet, k=k))


def _luhn_complete(body: str) -> str:
    """`body` plus the check digit that makes it Luhn-valid (digits doubled from the right)."""
    total = sum(sum(divmod(int(ch) * (2 - i % 2), 10)) for i, ch in enumerate(reversed(body)))
    return body + str(-total % 10)


_CARD_BRANDS = (("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
                ("37", 15), ("6011", 16), ("65", 16), ("62", 16), ("62", 19), ("3530", 16), ("36", 14))


def card_number(rng: random.Random) -> str:
    prefix, length = rng.choice(_CARD_BRANDS)
    return _luhn_complete(prefix + _chars(rng, string.digits, length - len(prefix) - 1))


def format_card(rng: random.Random, digits: str) -> str:
    sep = rng.choice(["", " ", "-"])
    if not sep or len(digits) == 13:
        return digits
    if len(digits) in (14, 15):  # Amex and Diners print 4-6-5 / 4-6-4
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


# (country, BBAN layout): "9" a digit, "A" an upper-case letter, "X" either.
_IBAN_LAYOUTS = (("DE", "9" * 18), ("GB", "AAAA" + "9" * 14), ("FR", "9" * 10 + "X" * 11 + "99"),
                 ("ES", "9" * 20), ("IT", "A" + "9" * 10 + "X" * 12), ("NL", "AAAA" + "9" * 10),
                 ("BE", "9" * 12), ("CH", "9" * 17), ("AT", "9" * 16), ("PL", "9" * 24),
                 ("SE", "9" * 20), ("IE", "AAAA" + "9" * 14), ("PT", "9" * 21))
_LAYOUT_CHARS = {"9": string.digits, "A": string.ascii_uppercase, "X": string.digits + string.ascii_uppercase}


def iban(rng: random.Random, valid: bool = True) -> str:
    country, layout = rng.choice(_IBAN_LAYOUTS)
    bban = "".join(rng.choice(_LAYOUT_CHARS[c]) for c in layout)
    check = 98 - int("".join(str(int(ch, 36)) for ch in bban + country + "00")) % 97  # ISO 13616
    if not valid:  # any other two digits, except the one that is congruent mod 97
        check = rng.choice([c for c in range(100) if c % 97 != check % 97])
    compact = f"{country}{check:02d}{bban}"
    return compact if rng.random() < 0.5 else " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


_CN_PROVINCES = (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
                 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id(rng: random.Random, valid: bool = True) -> str:
    birth = datetime.date(1970, 1, 1) + datetime.timedelta(days=rng.randint(-20000, 12000))  # 1915..2002
    first = f"{rng.choice(_CN_PROVINCES)}{rng.randint(1, 9999):04d}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first, _CN_WEIGHTS)) % 11]
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return first + (check.lower() if check == "X" and rng.random() < 0.2 else check)


def email(rng: random.Random) -> str:
    first, last = (rng.choice(["zhang", "li", "anna", "bob", "maria", "wei", "j", "o.neil", "kim"]) for _ in "ab")
    sep = rng.choice([".", "_", "", "-", "+news"])
    domain = rng.choice(["example.com", "mail.example.org", "corp.example.co.uk", "qq.com", "163.com", "uni.edu"])
    return f"{first}{sep}{last}{rng.randint(0, 99) if rng.random() < 0.4 else ''}@{domain}"


_PHONE_REGIONS = ("US", "GB", "DE", "FR", "JP", "AU", "IN", "CA", "BR", "SG", "CN")
_PHONE_FORMATS = (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164,
                  phonenumbers.PhoneNumberFormat.RFC3966)


def phone(rng: random.Random) -> str:
    """A number phonenumbers calls valid, written international, E.164, dashed or US-national style;
    or a Chinese mobile in one of the ways it is written locally."""
    if rng.random() < 0.3:
        mobile = f"1{rng.choice('3456789')}{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"
        spaced = f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
        return rng.choice([mobile, f"+86 {spaced}", f"+86{mobile}", f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"])
    region = rng.choice(_PHONE_REGIONS)
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    number, head = example, f"+{example.country_code}{str(example.national_number)[:-4]}"
    for _ in range(100):  # fresh last four digits, kept only where the numbering plan allows them
        if phonenumbers.is_valid_number(fresh := phonenumbers.parse(f"{head}{rng.randint(0, 9999):04d}")):
            number = fresh
            break
    us_national = region == "US" and rng.random() < 0.3
    style = phonenumbers.PhoneNumberFormat.NATIONAL if us_national else rng.choice(_PHONE_FORMATS)
    return phonenumbers.format_number(number, style).removeprefix("tel:")


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return ".".join(str(rng.randint(1 if i == 0 else 0, 223 if i == 0 else 255)) for i in range(4))
    groups = [0x2001, rng.choice([0xDB8, 0x470, 0x4860])] + [rng.randint(0, 0xFFFF) for _ in range(6)]
    if rng.random() < 0.5:  # a run of zero groups, so the address prints compressed with "::"
        start = rng.randint(2, 5)
        groups[start:start + 3] = [0, 0, 0]
    address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
    return address.compressed if rng.random() < 0.7 else address.exploded


def secret(rng: random.Random) -> tuple[str, str]:
    """(text to plant, the secret itself): the secret is only part of the text for URLs and Bearer."""
    token = _chars(rng, ALNUM, 24) + str(rng.randint(0, 9))
    key = rng.choice(["token", "access_token", "api_key", "key", "sig", "password"])
    choices = [(f"https://api.example.com/v1/items?{key}={token}&page=2", token),
               (f"postgres://admin:{token}@db.example.internal:5432/app", token),
               (f"Authorization: Bearer {token}", token)]
    choices += [(value, value) for value in (
        "AKIA" + _chars(rng, string.ascii_uppercase + string.digits, 16),
        "ghp_" + _chars(rng, ALNUM, 36),
        "github_pat_" + _chars(rng, ALNUM + "_", 40),
        f"xoxb-{rng.randint(10**11, 10**12 - 1)}-{_chars(rng, ALNUM, 24)}",
        "sk-proj-" + _chars(rng, TOKEN, 40) + _chars(rng, ALNUM, 1),
        "AIza" + _chars(rng, TOKEN, 35),
        rng.choice(["sk_live_", "rk_live_"]) + _chars(rng, ALNUM, 24),
        "eyJhbGciOiJIUzI1NiJ9." + _chars(rng, TOKEN, 30) + "." + _chars(rng, TOKEN, 43),
        "-----BEGIN RSA PRIVATE KEY-----\n" + _chars(rng, ALNUM + "+/", 64) + "\n-----END RSA PRIVATE KEY-----",
    )]
    return rng.choice(choices)


def _planted(rng: random.Random, kind: str, chinese: bool) -> tuple[str, str]:
    """(text to plant, value the detector must report) for one kind."""
    if kind == "us_ssn":  # area 001-899 but 666, group and serial not zero; bare only after "ssn"
        area, style = rng.choice([a for a in range(1, 900) if a != 666]), rng.choice(["-", " ", ""])
        value = f"{area:03d}{style}{rng.randint(1, 99):02d}{style}{rng.randint(1, 9999):04d}"
        cue = "社会安全号" if chinese else rng.choice(["ssn ", "SSN: ", "social security number "])
        return (value if style else cue + value), value
    if kind == "secret":
        return secret(rng)
    make = {"email": email, "phone": phone, "credit_card": lambda r: format_card(r, card_number(r)),
            "iban": iban, "ip": ip_address, "cn_id": cn_id}[kind]
    return (value := make(rng)), value


def _wide(ch: str) -> bool:
    """A non-ASCII character that stands alone (a combining mark belongs to the one before it)."""
    return not ch.isascii() and not unicodedata.combining(ch) and ch not in "\u200d\ufe0f"


def _insert(rng: random.Random, sentence: str, pieces: list[str], chinese: bool) -> str:
    """`pieces` at distinct random places, so at least one original word (English) or character
    (Chinese) keeps two pieces apart: between words in English, between CJK characters in Chinese."""
    if chinese:
        spots = [i for i in range(len(sentence) + 1)
                 if (i == 0 or _wide(sentence[i - 1])) and (i == len(sentence) or _wide(sentence[i]))]
        parts, glue = list(sentence), ""
    else:
        parts, glue = sentence.split(), " "
        spots = list(range(len(parts) + 1))
    if len(spots) < len(pieces):  # too short to keep them apart: append them, separated
        apart = "，" if chinese else " "
        return glue.join(parts) + apart + apart.join(pieces)
    for at, piece in sorted(zip(rng.sample(spots, len(pieces)), pieces), reverse=True):
        parts.insert(at, piece)
    return glue.join(parts)


def planted_rows(n: int, seed: int = 0) -> list[dict]:
    """`n` rows, each a real sentence with one or two planted values; kinds take turns."""
    from jobs.hygiene.pii import KINDS

    rng, rows = random.Random(seed), []
    for i in range(n):
        chinese = rng.random() < ZH_SHARE
        text = rng.choice(chinese_sentences() if chinese else english_sentences())
        kinds = [KINDS[i % len(KINDS)]] + ([rng.choice(KINDS)] if rng.random() < 0.3 else [])
        pieces = [_planted(rng, kind, chinese) for kind in kinds]
        text = _insert(rng, text, [piece for piece, _ in pieces], chinese)
        rows.append({"text": text, "planted": [(kind, value) for kind, (_, value) in zip(kinds, pieces)]})
    return rows


def _isbn13(rng: random.Random) -> str:
    body = "978" + _chars(rng, string.digits, 9)
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return rng.choice([f"978-{body[3]}-{body[4:7]}-{body[7:]}-{check}", body + str(check)])


def _bad_card(rng: random.Random) -> str:
    digits = card_number(rng)
    return format_card(rng, digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10))


_DECOYS = (
    lambda r: f"${r.randint(1, 9)},{r.randint(100, 999)}.00", lambda r: f"¥{r.randint(100, 9999)}",
    lambda r: f"{r.randint(10, 99999)}元", lambda r: f"€{r.randint(1, 999)}.{r.randint(0, 99):02d}",
    lambda r: str(r.randint(1900, 2030)), lambda r: f"{r.randint(1900, 2030)}年",
    lambda r: f"{r.randint(50, 99)}.{r.randint(0, 9)}", lambda r: f"{r.randint(0, 9)}-{r.randint(0, 9)}",
    lambda r: f"{r.randint(1, 10)}/10", lambda r: f"{r.randint(1, 100)}%",
    lambda r: f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    lambda r: f"{r.randint(1990, 2030)}/{r.randint(1, 12):02d}/{r.randint(1, 28):02d}",
    lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
    lambda r: f"v{r.randint(0, 9)}.{r.randint(0, 20)}.{r.randint(0, 30)}",
    lambda r: f"{r.randint(1, 20)}.{r.randint(0, 9)}.{r.randint(0, 9)}", lambda r: f"#{r.randint(100000, 999999)}",
    _isbn13, _bad_card, lambda r: iban(r, valid=False), lambda r: cn_id(r, valid=False),
    lambda r: str(r.randint(10**8, 10**9 - 1)),
)


def decoy_rows(n: int, seed: int = 0) -> list[dict]:
    """`n` real sentences carrying one to three numbers that are not personal data."""
    rng, rows = random.Random(seed), []
    for _ in range(n):
        chinese = rng.random() < ZH_SHARE
        text = rng.choice(chinese_sentences() if chinese else english_sentences())
        rows.append({"text": _insert(rng, text, [rng.choice(_DECOYS)(rng) for _ in range(rng.randint(1, 3))], chinese),
                     "planted": []})
    return rows


def clean_rows(n: int) -> list[dict]:
    """`n` real sentences as they are, English and Chinese interleaved, nothing planted."""
    english, chinese = english_sentences(), chinese_sentences()
    pick = [chinese[i % len(chinese)] if i % 10 < 3 else english[i % len(english)] for i in range(n)]
    return [{"text": text, "planted": []} for text in pick]
