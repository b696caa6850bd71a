"""A plausible procedure catalog per province, and the skewed popularity the events draw from.

Each province offers a few hundred to about two thousand procedures (the big cities the most),
with its own shares offered online (fully or partly), fee-bearing and integrated with online
payment, spread over the ranges provinces report (deterministic per province code and catalog
seed, like `profiles.default_profiles`). Popularity is Zipf-like over a shuffled order: a few
procedures take most dossiers, and a province-dependent share of the online procedures (10-45%)
is *dormant online*: nobody files it online (counter dossiers still happen), so some online
procedures get no online dossier in a month however long the run is, as Decision 766 item 3.2
expects, and some integrated procedures never see an online payment (3.5b).

Memory: the generator holds this for the whole run, so a province is a few flat arrays (codes as
integers, one flag byte and one weight per procedure), not objects per procedure: about 13 bytes
a procedure, under 1 MB for the 34 provinces. Names and `CatalogEntry` objects are made only when
the catalog is written out (`entries`, `write_catalog_csv`). The cumulative weights of each pool
of procedures an event may draw from (online, fully online, fee-bearing, payment-integrated, ...)
are built on first use and kept per province, at most a handful of arrays of floats each.
"""

from __future__ import annotations

import csv
import hashlib
import random
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Final, Literal

from psmon.schemas.catalog import CATALOG_FIELDS, CatalogEntry, OnlineLevel, ProcedureLevel, entry_row
from psmon.schemas.provinces import registry

__all__ = ["SimCatalog", "entries", "simulated_catalog", "write_catalog_csv"]

#: The simulated catalogs are in force from the 34-province merger on (and have no end).
VALID_FROM: Final = date(2025, 7, 1)

_ONLINE: Final[tuple[OnlineLevel, ...]] = ("none", "partial", "full")
_LEVELS: Final[tuple[ProcedureLevel, ...]] = ("province", "commune", "ministry")
# flag bits of a procedure
_ONLINE_MASK: Final = 0b11  # index into _ONLINE
_FEE: Final = 1 << 2
_INTEGRATED: Final = 1 << 3
_LEVEL_SHIFT: Final = 4  # two bits, index into _LEVELS
_DORMANT: Final = 1 << 6  # offered online, never filed online

_BIG: Final = {"79": 1.0, "01": 0.95, "31": 0.7, "48": 0.65, "92": 0.6}
_ACTIONS: Final = (
    "Cấp",
    "Cấp lại",
    "Cấp đổi",
    "Gia hạn",
    "Điều chỉnh",
    "Thu hồi",
    "Đăng ký",
    "Xác nhận",
    "Thẩm định",
    "Phê duyệt",
)
_SUBJECTS: Final = (
    "giấy phép xây dựng",
    "giấy chứng nhận quyền sử dụng đất",
    "giấy phép kinh doanh",
    "hộ tịch",
    "giấy phép lái xe",
    "chứng chỉ hành nghề",
    "giấy phép lao động",
    "hồ sơ bảo trợ xã hội",
    "giấy phép môi trường",
    "giấy chứng nhận an toàn thực phẩm",
    "hồ sơ đất đai",
    "giấy phép hoạt động giáo dục",
    "thủ tục thuế",
    "giấy phép quảng cáo",
    "hồ sơ người có công",
)

Pool = tuple[Literal["any", "online", "full"], bool, bool]


def _u(province: str, salt: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{province}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimCatalog:
    """One province's procedures as flat arrays (see module docstring)."""

    __slots__ = ("_pools", "codes", "flags", "province", "weights")

    def __init__(self, province: str, codes: array[int], flags: bytes, weights: array[float]):
        self.province = province
        self.codes = codes  # national code as prefix * 1_000_000 + number
        self.flags = flags
        self.weights = weights
        self._pools: dict[Pool, tuple[array[int], array[float]]] = {}

    def __len__(self) -> int:
        return len(self.codes)

    def code(self, i: int) -> str:
        n = self.codes[i]
        return f"{n // 1_000_000}.{n % 1_000_000:06d}"

    def level(self, i: int) -> ProcedureLevel:
        return _LEVELS[(self.flags[i] >> _LEVEL_SHIFT) & 0b11]

    def online_level(self, i: int) -> OnlineLevel:
        return _ONLINE[self.flags[i] & _ONLINE_MASK]

    def fee_bearing(self, i: int) -> bool:
        return bool(self.flags[i] & _FEE)

    def payment_integrated(self, i: int) -> bool:
        return bool(self.flags[i] & _INTEGRATED)

    def dormant(self, i: int) -> bool:
        """Offered online but never filed online (see module docstring)."""
        return bool(self.flags[i] & _DORMANT)

    def name(self, i: int) -> str:
        n = self.codes[i]
        return f"{_ACTIONS[n % len(_ACTIONS)]} {_SUBJECTS[(n // len(_ACTIONS)) % len(_SUBJECTS)]}"

    def pick(self, rng: random.Random, *, online: bool, full: bool, fee: bool, paid_online: bool) -> int:
        """A procedure for a dossier: online ones only for online filings (fully online for a
        fully online one, never a dormant one), fee-bearing for a fee-bearing dossier,
        payment-integrated when it is paid online; by popularity. A pool that is empty in this
        catalog is widened (integration, then fees, then the online level) rather than failing."""
        mode: Literal["any", "online", "full"] = ("full" if full else "online") if online else "any"
        candidates: list[Pool] = [(mode, fee, paid_online), (mode, fee, False), (mode, False, False)]
        if mode == "full":
            candidates.append(("online", False, False))
        candidates.append(("any", False, False))
        for pool in candidates:
            index, cum = self._pool(pool)
            if len(index) and cum[-1] > 0:
                return index[bisect_right(cum, rng.random() * cum[-1], hi=len(cum) - 1)]
        raise ValueError(f"province {self.province}: empty catalog")

    def _pool(self, pool: Pool) -> tuple[array[int], array[float]]:
        cached = self._pools.get(pool)
        if cached is not None:
            return cached
        mode, fee, integrated = pool
        index: array[int] = array("I")
        for i, f in enumerate(self.flags):
            level = f & _ONLINE_MASK
            if mode != "any" and (level == 0 or f & _DORMANT):
                continue
            if mode == "full" and _ONLINE[level] != "full":
                continue
            if (fee and not f & _FEE) or (integrated and not f & _INTEGRATED):
                continue
            index.append(i)
        cum = array("d", accumulate(self.weights[i] for i in index))
        self._pools[pool] = (index, cum)
        return index, cum


def _province_catalog(province: str, seed: int, pool_codes: list[int]) -> SimCatalog:
    def u(salt: str) -> float:
        return _u(province, salt, seed)

    size = int(300 + 1600 * (_BIG.get(province) or 0.6 * u("size")))
    online_share = 0.6 + 0.37 * u("online")
    full_share = 0.3 + 0.4 * u("full")  # of the online ones
    fee_share = 0.3 + 0.25 * u("fee")
    integrated_share = 0.5 + 0.48 * u("integrated")  # of the fee-bearing online ones
    dormant_share = 0.1 + 0.35 * u("dormant")  # of the online ones
    rng = random.Random(f"{seed}:{province}:catalog")
    chosen = sorted(rng.sample(pool_codes, size))
    flags = bytearray(size)
    for i in range(size):
        online = 0 if rng.random() >= online_share else (2 if rng.random() < full_share else 1)
        r = rng.random()
        f = online | ((0 if r < 0.35 else 1 if r < 0.9 else 2) << _LEVEL_SHIFT)  # province/commune/ministry
        if rng.random() < fee_share:
            f |= _FEE
            if online and rng.random() < integrated_share:
                f |= _INTEGRATED
        if online and rng.random() < dormant_share:
            f |= _DORMANT
        flags[i] = f
    # Zipf-like popularity over a shuffled order: rank r weighs 1 / r^1.1.
    ranks = list(range(1, size + 1))
    rng.shuffle(ranks)
    weights = array("d", (r**-1.1 for r in ranks))
    return SimCatalog(province, array("I", chosen), bytes(flags), weights)


@lru_cache(maxsize=4)
def simulated_catalog(seed: int = 0) -> dict[str, SimCatalog]:
    """The catalog of every current province for a catalog seed (cached: one per process)."""
    rng = random.Random(f"{seed}:national")
    # A national list of procedure codes that provinces pick from: mostly 1.xxxxxx, some 2.xxxxxx.
    pool_codes = sorted(
        set(rng.sample(range(1_000_100, 1_014_000), 2600)) | set(rng.sample(range(2_000_001, 2_002_700), 400))
    )
    return {code: _province_catalog(code, seed, pool_codes) for code in registry().codes}


def entries(catalog: dict[str, SimCatalog], *, valid_from: date = VALID_FROM) -> Iterator[CatalogEntry]:
    """The catalog as entries (one per province and procedure), made one at a time."""
    for province, cat in sorted(catalog.items()):
        for i in range(len(cat)):
            yield CatalogEntry(
                province_code=province,
                procedure_code=cat.code(i),
                name=cat.name(i),
                level=cat.level(i),
                online_level=cat.online_level(i),
                fee_bearing=cat.fee_bearing(i),
                payment_integrated=cat.payment_integrated(i),
                valid_from=valid_from,
            )


def write_catalog_csv(path: Path, catalog: dict[str, SimCatalog], *, valid_from: date = VALID_FROM) -> int:
    """Write the catalog as a CSV file `psmon catalog load` reads; returns the rows written."""
    n = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CATALOG_FIELDS))
        writer.writeheader()
        for entry in entries(catalog, valid_from=valid_from):
            row = entry_row(entry)
            row["fee_bearing"] = "true" if entry.fee_bearing else "false"
            row["payment_integrated"] = "true" if entry.payment_integrated else "false"
            row["valid_to"] = row["valid_to"] or ""
            writer.writerow(row)
            n += 1
    return n
