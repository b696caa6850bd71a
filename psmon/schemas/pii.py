"""Personal-data guard: recognise field names and values that would carry data about a person.

Events describe dossiers, never people. A message is rejected with the reason `personal_data`,
and nothing of what was personal is stored anywhere (not in the dead-letter topic, not in
ClickHouse, not in logs), when

- a field's *name* says it holds a citizen's name, ID number, phone, e-mail, address or birth date
  (`is_personal_field`). Names are compared after folding case and dropping separators, so
  `Ho_Ten`, `hoTen` and `ho-ten` all match; the word list covers English and Vietnamese (without
  diacritics) spellings;
- or a string *value*, in any field, contains something shaped like a national ID number, a
  Vietnamese mobile number or an e-mail address (`personal_value_kind`).

The value patterns work on *tokens*, maximal runs of ASCII letters and digits, so that digits
inside a longer identifier never count (`HS123456789`, a hex id). They are chosen so that the
identifiers portals really send never match (a test runs millions of them):

- CCCD (and the 12-digit CMND): a 12-digit token shaped like one, `0` + province 01-96 +
  century/sex digit 0-3 + 8 digits; except the last group of a UUID, which may be 12 digits;
- mobile number: a 10-digit token `0[35789]` + 8 digits, or `84[35789]` + 8 digits (also `+84...`);
- CMND: 9 digits as a word of its own: the whole value, or set apart by characters that are not
  part of code syntax (a space, `=`, `,`, ...). A 9-digit group inside a code (after `.`, `-`,
  `_`, `:` or `/`, as in `H25.000000123` or `HS-123456789`) is a sequence number: portals and
  psmon's simulator number dossiers that way, and a rule that refused them would drop real
  events. A bare 9-digit identifier is refused, so portals must not send one;
- e-mail: `local@domain.tld`.

The value check runs on every message, and Python's regex engine costs tens of nanoseconds per
character scanned, so it is layered from cheap to dear. `may_hold_personal_value` looks at the
raw bytes with C-speed bytes operations: every pattern needs 9 digits in a row or an `@` (or a
backslash, which could start a JSON `\\u` escape that spells either), and most messages have
none, so for them nothing else runs. Otherwise `scan` makes one call of one precompiled pattern (its first element is a
digit class, its branches name the kind) over all the string values of the message joined by
line feeds (a boundary for every rule above), and a substring test for `@` guards the e-mail
pattern. For a batch of raw messages, `personal_value_candidates` does `has_personal_value`'s
marking and substring tests once over all their bytes, so the exact check runs only for the
few messages it flags.
"""

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, count
from operator import add
from typing import Final, Literal

__all__ = [
    "PersonalKind",
    "has_personal_value",
    "is_personal_field",
    "may_hold_personal_value",
    "personal_value_candidates",
    "personal_value_kind",
    "scan",
]

PersonalKind = Literal["ID number", "phone number", "e-mail address"]

_PII_FRAGMENTS = (
    # names
    "name",
    "hoten",
    "hovaten",
    "tencongdan",
    "fullname",
    # personal ID numbers
    "cccd",
    "cmnd",
    "cancuoc",
    "idnumber",
    "idno",
    "nationalid",
    "personalid",
    "citizenid",
    "identity",
    "passport",
    "hochieu",
    "dinhdanh",
    "ssn",
    # phone
    "phone",
    "mobile",
    "sdt",
    "sodienthoai",
    "dienthoai",
    "telephone",
    # email
    "email",
    "mail",
    # address
    "address",
    "diachi",
    "street",
    "noio",
    "thuongtru",
    "tamtru",
    # birth date
    "birth",
    "dob",
    "ngaysinh",
    "namsinh",
)
_PII_RE = re.compile("|".join(_PII_FRAGMENTS))
_SEPARATORS = re.compile(r"[^a-z0-9]")

# The first character consumed is always a digit (so the engine jumps from digit to digit); the
# lookahead right after it drops runs shorter than 9 (dates, times, short numbers) before the
# dearer lookbehind checks that the digit starts a token. Each branch then names its kind.
_UUID_HEAD: Final = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
#: Characters of code syntax: a 9-digit group next to one of these is part of a code.
_CODE_SEPARATORS: Final = "._:/-"
_DIGITS_RE: Final = re.compile(
    r"[0-9](?=[0-9]{8})(?<![A-Za-z0-9][0-9])(?:"
    # CCCD: 0 + province 01-96 + century/sex 0-3 + 8 digits; not the last group of a UUID
    rf"(?P<cccd>(?<=0)(?<!{_UUID_HEAD}0)(?:0[1-9]|[1-8][0-9]|9[0-6])[0-3][0-9]{{8}}(?![A-Za-z0-9]))"
    # mobile: 0[35789] + 8 digits, or 84[35789] + 8 digits (+84 too: '+' is not a token character)
    r"|(?P<phone>(?:(?<=0)|(?<=8)4)[35789][0-9]{8}(?![A-Za-z0-9]))"
    # CMND: 9 digits as a word of their own, not a group inside a code
    rf"|(?P<cmnd>(?<![{_CODE_SEPARATORS}][0-9])[0-9]{{8}}(?![A-Za-z0-9{_CODE_SEPARATORS}]))"
    r")"
)
_EMAIL_RE: Final = re.compile(r"(?<=[A-Za-z0-9._%+-])@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_KIND: Final[dict[str | None, PersonalKind]] = {"cccd": "ID number", "cmnd": "ID number", "phone": "phone number"}
#: Maps every ASCII digit to "0", "@" and "\\" to "@", every other byte to "x": one pass, then 9
#: digits in a row are 9 zeros, and an "@" says e-mail or escape.
_DIGIT_RUNS: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x40 if b in b"@\\" else 0x78 for b in range(256))
_NINE_DIGITS: Final = b"0" * 9


def _token_class(byte: int) -> int:
    """`has_personal_value`'s marking of one byte: a digit is "0", a token character "a", a code
    separator "s", "@" and "\\" are "@", any other character (a line feed, a space, "+") "n"."""
    char = chr(byte)
    if char.isascii() and char.isdigit():
        return ord("0")
    if char.isascii() and char.isalpha():
        return ord("a")
    if char in _CODE_SEPARATORS:
        return ord("s")
    return ord("@") if char in "@\\" else ord("n")


_TOKEN_CLASSES: Final = bytes(_token_class(b) for b in range(256))
#: Where a digit pattern can match, in that marking: 9 digits at the start or after a character
#: that is neither a token character nor a code separator, or 10 digits after a code separator.
_RUN_AT_START: Final = b"0" * 9
_RUN_AFTER_OTHER: Final = b"n" + b"0" * 9
_RUN_AFTER_SEPARATOR: Final = b"s" + b"0" * 10
#: Shorter strings cannot hold any of the patterns (the shortest is an e-mail like a@b.vn).
_MIN_LEN: Final = 6
_MIN_DIGITS_LEN: Final = 9


def _fold(name: str) -> str:
    # Strip diacritics (Vietnamese đ has no decomposition, map it by hand) and separators.
    decomposed = unicodedata.normalize("NFKD", name.lower().replace("đ", "d"))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub("", ascii_only)


def is_personal_field(name: str) -> bool:
    """True if a field name says it holds personal data."""
    return _PII_RE.search(_fold(name)) is not None


def may_hold_personal_value(raw: bytes) -> bool:
    """False when no string in the JSON text `raw` can contain a personal value (no 9 digits in a
    row, no `@`, no backslash that could start a `\\u` escape); True means "look closer" (`scan`)."""
    marked = raw.translate(_DIGIT_RUNS)
    return b"@" in marked or _NINE_DIGITS in marked


def personal_value_kind(text: str) -> PersonalKind | None:
    """What personal data `text` contains, or None (see the module docstring for the patterns)."""
    if len(text) < _MIN_LEN:
        return None
    if len(text) >= _MIN_DIGITS_LEN:
        m = _DIGITS_RE.search(text)
        if m is not None:
            return _KIND[m.lastgroup]
    if "@" in text and _EMAIL_RE.search(text) is not None:
        return "e-mail address"
    return None


def has_personal_value(text: str) -> bool:
    """`personal_value_kind(text) is not None`, at a fraction of the cost on text with many short
    digit runs (event times, codes), as every valid event has.

    Every digit pattern starts with the first digit of a token followed by 8 more digits, so a
    match can only start where a run of at least 9 digits starts, and only one not right after a
    letter (then it is inside a token) nor, if exactly 9 long, after a code separator (the ID-number
    rule excludes that, the phone and CCCD rules need 10-12 digits). A C-speed marking of the text
    by character class (like `may_hold_personal_value`'s) finds whether there is such a run with
    three substring tests; only then is the regex tried (`match`, whose lookbehinds still see the
    text before the position) at each run start, instead of being entered at every digit of the
    text, which costs about 0.1-0.3 µs a digit. Text with an `@` (or not ASCII) gets the full
    `personal_value_kind`. The simulator's dossier numbers (`H25.000000123`) have a 9-digit group
    after a dot: the regex `match` there was about a third of this function's time."""
    if len(text) < _MIN_LEN:
        return False
    marked = text.encode("utf-8", "surrogatepass").translate(_TOKEN_CLASSES)
    if len(marked) != len(text) or b"@" in marked:  # not ASCII (byte offsets are not character
        return personal_value_kind(text) is not None  # offsets), or an e-mail is possible: rare
    # Every digit pattern starts a token (not after a letter or digit) with 9 digits; after a
    # code separator the ID-number pattern of 9 is excluded, the others need 10 or 12 digits. So
    # a 9-digit group inside a code (`H25.000000123`, every simulator dossier) needs no regex.
    if not (marked.startswith(_RUN_AT_START) or _RUN_AFTER_OTHER in marked or _RUN_AFTER_SEPARATOR in marked):
        return False
    at = marked.find(_NINE_DIGITS)
    while at >= 0:
        # `at` starts a run (the run's earlier digits would have been found first) or lies
        # inside one found before (then the token-start lookbehind fails, as a search would).
        if _DIGITS_RE.match(text, at) is not None:
            return True
        at = marked.find(_NINE_DIGITS, at + 9)
    return False


def personal_value_candidates(messages: Sequence[bytes]) -> set[int]:
    """Indices of the JSON texts in `messages` whose string values may hold a personal value; for
    every other message that parses, `has_personal_value` of its string values is False.

    The marking and the three substring tests of `has_personal_value`, done once over the raw
    bytes of a whole batch joined by line feeds (C-speed `translate` and `find`, no Python per
    message), instead of once per message over its decoded strings. It is a superset: where the
    text has no backslash (a JSON escape marks as "@", so a message with one is a candidate),
    every string value appears verbatim between two `"`, which mark like the line feeds that
    separate the values `has_personal_value` reads (a non-token, non-separator character), so a
    run that starts a token there starts one here too. The digit runs of field names, integers
    and the other JSON syntax only add candidates, and the caller runs the exact check on those.
    A match's last byte is a digit or an `@` inside the message it is counted for (a line feed
    between messages marks as "n" and ends every run)."""
    found: set[int] = set()
    for start in range(0, len(messages), _PRESCAN_MESSAGES):
        _candidates_in(messages[start : start + _PRESCAN_MESSAGES], start, found)
    return found


#: Messages marked per `translate`: about 40 KB of typical events, well under the size where the
#: allocator maps fresh pages for each buffer (at 2,000 messages, page faults on the two 600 KB
#: buffers doubled the pre-scan's cost).
_PRESCAN_MESSAGES: Final = 128


def _candidates_in(messages: Sequence[bytes], first: int, found: set[int]) -> None:
    marked = b"\n".join(messages).translate(_TOKEN_CLASSES)
    # The first text has no line feed before it: a run at its very start counts as after one.
    if marked.startswith(_RUN_AT_START):
        found.add(first)
    ends: list[int] | None = None
    for needle in (b"@", _RUN_AFTER_OTHER, _RUN_AFTER_SEPARATOR):
        at = marked.find(needle)
        while at >= 0:
            if ends is None:
                # Where each message's text ends, its line feed included: message i is
                # marked[ends[i - 1]:ends[i] - 1].
                ends = list(map(add, accumulate(map(len, messages)), count(1)))
            index = bisect_right(ends, at + len(needle) - 1)
            found.add(first + index)
            at = marked.find(needle, ends[index])  # the next message: one hit is enough


def scan(texts: list[str]) -> bool:
    """True if any of `texts` contains personal data: one pass over them joined by line feeds.

    A line feed ends a token and a word for every pattern, so this is `personal_value_kind` on
    each text, at the cost of one regex call. Which text it was is for the caller to find (rare)."""
    return personal_value_kind("\n".join(texts)) is not None
