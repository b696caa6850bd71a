"""Strip credentials from URLs and DSNs before anything prints or logs them.

psmon takes servers as URLs that may carry secrets: a ClickHouse DSN with `user:password@` or
`?password=`, a Grafana URL with basic-auth credentials, a token in a query string. Banners
(`psmon up`), command output and error messages name those servers, and terminals, CI logs and
bug reports keep what they show. So every place that prints or logs a URL passes it through
`redact_url`, and the CLI's error printer passes whole messages through `redact_text` (an error
from a library may quote the URL it was given).

Design: the helper is deliberately over-eager. The user info of a URL is everything before the
last `@` ahead of the query string (a password with an unencoded `/`, `?` or `#` stays inside
it), and only the user name survives (`user:***@`); a lone `name@` may be a token and is masked
whole. Query parameters whose name says secret
(`password`, `token`, `secret`, `key`, `auth`, `signature`, ...) keep their name and lose their
value. Nothing is parsed strictly, so a malformed URL is redacted too rather than raising. It
sits at the bottom layer, beside `errors`, so every layer can use it.
"""

import re

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"

# query parameter names that carry a secret (case-insensitive, matched inside the name)
_SECRET_PARAM = re.compile(r"pass|pwd|token|secret|key|auth|sig|credential|session", re.IGNORECASE)
# a URL inside free text: scheme://, then up to whitespace or a quote/bracket that ends it
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def _redact_query(query: str) -> str:
    parts = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        parts.append(f"{name}={MASK}" if eq and _SECRET_PARAM.search(name) else pair)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """`url` without secrets: `scheme://user:***@host/path?password=***&db=x`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # the query and fragment start at the first `?` or `#` after the last `@` (user info may hold them)
    at = rest.rfind("@", 0, _query_start(rest))
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        # `user:password@` keeps the user; a lone `name@` may be a token, so it goes entirely
        userinfo = f"{user}:{MASK}" if colon else MASK
        rest = f"{userinfo}@{rest[at + 1 :]}"
    q = _query_start(rest)
    if q < len(rest) and rest[q] == "?":
        query, hash_, fragment = rest[q + 1 :].partition("#")
        rest = rest[: q + 1] + _redact_query(query) + hash_ + fragment
    return f"{scheme}://{rest}"


def _query_start(rest: str) -> int:
    """Index of the `?` or `#` that starts the query or fragment (len(rest) if none); a `?` or
    `#` before the last `@` belongs to the user info."""
    last_at = rest.rfind("@")
    for i, ch in enumerate(rest):
        if ch in "?#" and i > last_at:
            return i
    return len(rest)


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted (for error messages that may quote one); punctuation
    that ends a sentence after a URL (`at http://h/x: refused`) stays outside it."""

    def one(m: re.Match[str]) -> str:
        url = m.group(0)
        core = url.rstrip(".,;:!?)]")
        return redact_url(core) + url[len(core) :]

    return _URL_IN_TEXT.sub(one, text)
