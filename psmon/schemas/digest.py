"""Keyed digests of rejected payloads: stable ids without a reversible fingerprint.

A dead letter keeps a fingerprint of what was rejected so that the same bad input is recognised
wherever it comes from (Kafka, a backfill file, a redelivery) and stored once. A plain SHA-256
of a short payload is reversible by trying every value (a 12-digit ID number has only 10^12
candidates), so the fingerprint is an HMAC-SHA-256 under a key the attacker does not hold.

The key is process-wide and set once at start-up by the command that runs (`set_key`, from the
settings); every process of one installation must use the same key, or the same payload gets
different ids in the worker and in `psmon replay`. Without a configured key a fixed built-in
key is used: ids are still stable, but the fingerprint is then only as private as that key is
(documented in docs/configuration.md).
"""

import hashlib
import hmac
from typing import Final

__all__ = ["BUILTIN_KEY", "current_key", "payload_digest", "set_key"]

#: the key used when none is configured (public: it is in the source)
BUILTIN_KEY: Final = b"psmon-builtin-digest-key-v1"

_key: bytes = BUILTIN_KEY


def set_key(key: bytes) -> None:
    """Use `key` for every digest from now on in this process (empty = the built-in key)."""
    global _key
    _key = key or BUILTIN_KEY


def current_key() -> bytes:
    """The key in use: what a worker process is given, so that it digests as this process does."""
    return _key


def payload_digest(data: bytes) -> str:
    """HMAC-SHA-256 of `data` under the process key, as 64 hex characters."""
    return hmac.new(_key, data, hashlib.sha256).hexdigest()
