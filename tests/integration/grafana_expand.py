r"""Expand Grafana template variables and ClickHouse-plugin macros the way Grafana does, so tests
can run each panel's query text as Grafana would send it.

- `$var`, `${var}`, `${var:csv}`, and the quoting formats exactly as Grafana's format registry
  (`formatRegistry.ts`) implements them, escaping flaws included, so tests can show what a crafted
  value does: `${var:singlequote}` escapes only `'` (as `\'`); `${var:sqlstring}` doubles `'`,
  turns `"` into `\"` and leaves `\` alone; `${var:percentencode}` is JavaScript's
  `encodeURIComponent` plus `!'()*` (a multi-value is encoded as `{a,b}`). A value given as a
  `str` is a single value, a list is a multi-value selection (as Grafana passes an array);
- Prometheus: `$__rate_interval` (given by the test, e.g. a few scrape intervals);
- ClickHouse plugin (pkg/macros of grafana/clickhouse-datasource): `$__timeFilter(col)` is
  `col >= toDateTime(<from s>) AND col <= toDateTime(<to s>)`; `$__fromTime`/`$__toTime` are
  `toDateTime(<s>)`.
"""

import re
import urllib.parse
from collections.abc import Mapping, Sequence


def _percent(text: str) -> str:
    """Grafana's `encodeURIComponentStrict`: only `A-Z a-z 0-9 - _ . ~` stay as they are."""
    return urllib.parse.quote(text, safe="-_.~")


def _sqlstring(text: str) -> str:
    return "'" + re.sub("['\"]", lambda m: "''" if m.group(0) == "'" else '\\"', text) + "'"


def expand(text: str, variables: Mapping[str, str | Sequence[str]], *, from_s: int = 0, to_s: int = 0) -> str:
    def time_filter(m: re.Match[str]) -> str:
        col = m.group(1).strip()
        return f"{col} >= toDateTime({from_s}) AND {col} <= toDateTime({to_s})"

    text = re.sub(r"\$__timeFilter\(([^)]*)\)", time_filter, text)
    text = text.replace("$__fromTime", f"toDateTime({from_s})").replace("$__toTime", f"toDateTime({to_s})")

    def value(name: str, fmt: str | None) -> str:
        if name not in variables:
            raise KeyError(f"no value for ${name}")
        v = variables[name]
        values = [v] if isinstance(v, str) else list(v)
        if fmt == "singlequote":
            return ",".join("'" + x.replace("'", "\\'") + "'" for x in values)
        if fmt == "sqlstring":
            return ",".join(_sqlstring(x) for x in values)
        if fmt == "percentencode":
            return _percent(v) if isinstance(v, str) else _percent("{" + ",".join(values) + "}")
        if fmt in (None, "csv", "raw"):
            return ",".join(values)
        raise ValueError(f"format {fmt} not supported here")

    text = re.sub(r"\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}", lambda m: value(m.group(1), m.group(2)), text)
    return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: value(m.group(1), None), text)
