"""Strict checks of built dashboard JSON, run by `psmon dashboards build` and by the tests.

The SDK's own model is the schema: a dashboard must survive `Dashboard.from_json(...).to_json()`
unchanged, which fails on any key or panel option the model does not know and on options left
null. On top of that: stable UID format, unique panel ids, panels inside the 24-column grid
without overlaps, every query on one of the provisioned datasources with a refId, ClickHouse
queries in the plugin's SQL-editor shape, every `$variable` defined (or a Grafana built-in), and
every query or custom variable closed to custom values (`allowCustomValue: false`, a key newer
than the SDK's model, so it is set aside for the round trip), and threshold steps that rise
strictly (two steps at one value hide a colour: it can never show).
"""

import json
import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from psmon.dashboards.datasources import ALERTMANAGER, CLICKHOUSE, PROMETHEUS

__all__ = ["BUILTIN_VARIABLES", "LISTED_VARIABLE_TYPES", "check_dashboard", "used_variables"]

#: Variable types whose values come from a list, and which must refuse values typed in (or put in a URL).
LISTED_VARIABLE_TYPES = frozenset({"query", "custom"})

#: Variables Grafana (or the ClickHouse plugin's macros) provide without a definition.
BUILTIN_VARIABLES = frozenset(
    {
        "__rate_interval",
        "__interval",
        "__interval_ms",
        "__range",
        "__range_s",
        "__from",
        "__to",
        "__timeFilter",
        "__timeFilter_ms",
        "__fromTime",
        "__toTime",
        "__fromTime_ms",
        "__toTime_ms",
        "__dateFilter",
        "__dateTimeFilter",
        "__timeInterval",
        "__timeInterval_ms",
        "__interval_s",
        "__value",
        "__all",
        "__dashboard",
        "__org",
        "__user",
    }
)

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# $name, ${name}, ${name:format}, ${__value.raw}; [[name]] is deprecated and not used here
_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?:[.:][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_DATASOURCES = {PROMETHEUS.uid: "prometheus", ALERTMANAGER.uid: "alertmanager", CLICKHOUSE.uid: CLICKHOUSE.type_val}
_CLICKHOUSE_KEYS = {"refId", "datasource", "editorType", "queryType", "format", "rawSql"}

_registered = False


def _roundtrip(doc: dict[str, Any]) -> dict[str, Any]:
    global _registered
    if not _registered:
        register_default_plugins()
        _registered = True
    out: dict[str, Any] = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    return out


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def used_variables(node: Any) -> set[str]:
    """Every variable name referenced anywhere in `node` (queries, titles, links)."""
    names = set()
    for s in _strings(node):
        for m in _VAR.finditer(s):
            names.add(m.group(1) or m.group(2))
    return names


def _diff(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: {'dropped by the model' if k in a else 'added by the model'}"
            d = _diff(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _diff(x, y, f"{path}/{i}")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _threshold_sets(panels: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel / field, thresholds) of every panel's defaults and overrides."""
    for p in panels:
        fc = p.get("fieldConfig") or {}
        if th := (fc.get("defaults") or {}).get("thresholds"):
            yield str(p.get("title")), th
        for o in fc.get("overrides") or []:
            for prop in o.get("properties") or []:
                if prop.get("id") == "thresholds":
                    yield f"{p.get('title')} / {o.get('matcher', {}).get('options')}", prop["value"]


def check_dashboard(doc: dict[str, Any]) -> list[str]:
    """Problems found in one dashboard's JSON; empty when it passes."""
    problems: list[str] = []
    title = doc.get("title", "?")
    variables: list[dict[str, Any]] = doc.get("templating", {}).get("list", [])
    for v in variables:
        if v.get("type") in LISTED_VARIABLE_TYPES and v.get("allowCustomValue") is not False:
            problems.append(f"{title}: variable {v.get('name')} must set allowCustomValue: false")
    # the SDK model does not know allowCustomValue: compare without it
    doc = {
        **doc,
        "templating": {
            **doc.get("templating", {}),
            "list": [{k: x for k, x in v.items() if k != "allowCustomValue"} for v in variables],
        },
    }
    try:
        problem = _diff(doc, _roundtrip(doc))
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"the SDK model cannot read it: {exc!r}"
    if problem:
        problems.append(f"{title}: not accepted by the SDK model as is: {problem}")
    if not _UID.match(str(doc.get("uid", ""))):
        problems.append(f"{title}: uid {doc.get('uid')!r} must be 1-40 of [A-Za-z0-9_-]")
    panels: list[dict[str, Any]] = doc.get("panels", [])
    ids = [p.get("id") for p in panels]
    if None in ids or len(set(ids)) != len(ids):
        problems.append(f"{title}: panel ids must be set and unique, got {ids}")
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        name = f"{title} / {p.get('title')}"
        g = p.get("gridPos") or {}
        if not (
            g.get("x", -1) >= 0 and g.get("x", 0) + g.get("w", 0) <= 24 and g.get("w", 0) > 0 and g.get("h", 0) > 0
        ):
            problems.append(f"{name}: gridPos {g} outside the 24-column grid")
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    problems.append(f"{name}: overlaps {cells[(x, y)]}")
                    break
                cells[(x, y)] = name
            else:
                continue
            break
        ds = p.get("datasource") or {}
        if _DATASOURCES.get(ds.get("uid")) != ds.get("type"):
            problems.append(f"{name}: datasource {ds} is not one of the provisioned ones")
        for t in p.get("targets") or []:
            if not t.get("refId"):
                problems.append(f"{name}: a query has no refId")
            tds = t.get("datasource") or ds
            if tds.get("uid") != ds.get("uid"):
                problems.append(f"{name}: query datasource {tds} differs from the panel's {ds}")
            if ds.get("uid") == CLICKHOUSE.uid and set(t) != _CLICKHOUSE_KEYS:
                problems.append(f"{name}: ClickHouse query keys {sorted(t)} != {sorted(_CLICKHOUSE_KEYS)}")
            if ds.get("uid") == PROMETHEUS.uid and not t.get("expr"):
                problems.append(f"{name}: Prometheus query without expr")
    for where, th in _threshold_sets(doc.get("panels", [])):
        values = [s.get("value") for s in th.get("steps", [])]
        if values[:1] != [None] or any(not a < b for a, b in pairwise(values[1:])):
            problems.append(f"{title} / {where}: threshold steps {values} must rise strictly after the base")
    defined = {v["name"] for v in doc.get("templating", {}).get("list", [])}
    undefined = used_variables(doc.get("panels", [])) | used_variables(doc.get("templating", {}))
    undefined -= defined | BUILTIN_VARIABLES
    if undefined:
        problems.append(f"{title}: variables used but not defined: {sorted(undefined)}")
    return problems
