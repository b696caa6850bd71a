"""Per-province behaviour for the simulator: volume and the shares that the index measures.

Shares differ by province as they do in reality (national online submission ~52%, provinces
from under 30% to over 90%). Anchors from published figures (docs/index766.md): Phú Thọ (Aug 2026) ~82% online, 84% of
fee-bearing dossiers paid online, 78.38% on time; Lâm Đồng 43.6% online payment (H1 2023).
Other provinces get deterministic values spread over the observed ranges (a hash of the code, so
they never change between runs), with the big cities carrying most of the volume.
"""

import hashlib
from dataclasses import dataclass, replace
from typing import Final

from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry

__all__ = ["SHARE_NAMES", "ProvinceProfile", "ShareName", "default_profiles", "with_drop"]

#: The simulator's adjustable shares are the live metrics of stage 2.
ShareName = Metric
SHARE_NAMES: Final[tuple[str, ...]] = tuple(METRICS)


@dataclass(frozen=True)
class ProvinceProfile:
    code: str
    volume_weight: float  # share of national dossiers
    online_submission: float  # P(channel=online)
    full_online: float  # P(service_mode=full_online | online) * online = share of all dossiers
    fee_bearing: float  # P(fee-bearing)
    online_payment: float  # P(paid online | fee-bearing)
    dossier_digitization: float  # P(components digitized)
    result_digitization: float  # P(result digitized | resolved)
    on_time: float  # P(on time | resolved)


_BIG: Final = {
    "01": 9.0,
    "79": 10.0,
    "31": 4.0,
    "24": 3.5,
    "25": 3.5,
    "75": 3.5,
    "38": 3.0,
    "40": 3.0,
    "48": 2.5,
}
_ANCHORS: Final[dict[str, dict[str, float]]] = {
    "25": {"online_submission": 0.82, "online_payment": 0.842, "on_time": 0.7838},
    "68": {"online_payment": 0.436},
}


def _u(code: str, salt: str) -> float:
    """A deterministic number in [0, 1) for a province and a purpose."""
    digest = hashlib.sha256(f"{code}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def default_profiles() -> dict[str, ProvinceProfile]:
    profiles = {}
    for code in registry().codes:
        online = 0.28 + 0.64 * _u(code, "online")
        values = {
            "online_submission": online,
            "full_online": online * (0.45 + 0.4 * _u(code, "full")),
            "fee_bearing": 0.45 + 0.15 * _u(code, "fee"),
            "online_payment": 0.35 + 0.55 * _u(code, "pay"),
            "dossier_digitization": 0.5 + 0.45 * _u(code, "digd"),
            "result_digitization": 0.55 + 0.43 * _u(code, "digr"),
            "on_time": 0.75 + 0.24 * _u(code, "ontime"),
        }
        values.update(_ANCHORS.get(code, {}))
        values["full_online"] = min(values["full_online"], values["online_submission"])
        profiles[code] = ProvinceProfile(code=code, volume_weight=_BIG.get(code, 1.0), **values)
    return profiles


def with_drop(
    profiles: dict[str, ProvinceProfile], province: str, share: str, value: float
) -> dict[str, ProvinceProfile]:
    """Profiles where one province's share is forced to `value` (to make it cross a threshold)."""
    if province not in profiles:
        raise ValueError(f"unknown province {province!r}; use one of the 34 codes")
    if share not in SHARE_NAMES:
        raise ValueError(f"unknown metric {share!r}; use one of {', '.join(SHARE_NAMES)}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"value must be within 0..1, got {value}")
    changed = replace(profiles[province], **{share: value})  # type: ignore[arg-type]
    if share == "online_submission":
        changed = replace(changed, full_online=min(changed.full_online, value))
    if share == "full_online":
        changed = replace(changed, online_submission=max(changed.online_submission, value))
    return {**profiles, province: changed}
