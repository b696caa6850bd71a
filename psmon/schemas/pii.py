"""Personal-data guard: recognise field names that would carry data about a person.

Events describe dossiers, never people. Unknown fields are rejected anyway, but a field whose
*name* says it holds a citizen's name, ID number, phone, email, address or birth date is reported
with the more serious reason `personal_data`, and its value is never stored anywhere (not in the
dead-letter topic, not in ClickHouse, not in logs).

Names are compared after folding case and dropping separators, so `Ho_Ten`, `hoTen` and
`ho-ten` all match. The word list covers English and Vietnamese (without diacritics) spellings.
"""

import re
import unicodedata

__all__ = ["is_personal_field"]

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


def _fold(name: str) -> str:
    # Strip diacritics (Vietnamese đ has no decomposition, map it by hand) and separators.
    decomposed = unicodedata.normalize("NFKD", name.lower().replace("đ", "d"))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub("", ascii_only)


def is_personal_field(name: str) -> bool:
    """True if a field name says it holds personal data."""
    return _PII_RE.search(_fold(name)) is not None
