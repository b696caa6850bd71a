"""Upload the dashboards to a running Grafana with `grafana-client`, idempotently.

`grafana-client` is the maintained fork of the archived `grafana-api` package. The push:
1. makes sure the `psmon` folder exists (GET /api/folders/psmon, POST /api/folders if 404);
2. optionally creates or updates the three datasources by UID (GET /api/datasources/uid/<uid>,
   then PUT /api/datasources/uid/<uid> or POST /api/datasources);
3. posts every dashboard to POST /api/dashboards/db with `overwrite: true` and `id: null`, so the
   same UID replaces the stored dashboard (Grafana bumps its version) instead of failing.
Pushing twice therefore leaves one folder, three datasources and four dashboards.
The URL may carry basic-auth credentials; messages name it through `psmon.redact` only.
"""

import logging
from dataclasses import dataclass
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from psmon.dashboards.build import FOLDER_TITLE, FOLDER_UID, BuildOptions, build_all
from psmon.dashboards.datasources import provisioned_datasources
from psmon.errors import PsmonError
from psmon.redact import redact_text, redact_url

__all__ = ["PushResult", "push"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushResult:
    folder_created: bool
    datasources: dict[str, str]  # uid → "created" | "updated"
    dashboards: dict[str, int]  # uid → version Grafana reports


def _status(exc: GrafanaException) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def push(
    url: str,
    token: str | None,
    *,
    options: BuildOptions | None = None,
    with_datasources: bool = False,
    timeout_s: float = 10.0,
) -> PushResult:
    """Push every dashboard (and optionally the datasources) to the Grafana at `url`."""
    options = options or BuildOptions()
    dashboards = build_all(options)
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    try:
        folder_created = _ensure_folder(api)
        ds_result: dict[str, str] = {}
        if with_datasources:
            for ds in provisioned_datasources(options.datasources):
                ds_result[ds["uid"]] = _upsert_datasource(api, ds)
        versions = {}
        for uid, doc in dashboards.items():
            payload = {
                "dashboard": {**doc, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "psmon dashboards push",
            }
            answer: Any = api.dashboard.update_dashboard(payload)
            versions[uid] = int(answer.get("version", 0)) if isinstance(answer, dict) else 0
            log.info("pushed dashboard %s (version %s)", uid, versions[uid])
    except GrafanaException as exc:
        # the URL may carry `user:password@` (basic auth) and a library's message may quote it
        raise PsmonError(
            f"Grafana at {redact_url(url)} refused the push: {redact_text(str(exc))}. Check the URL and "
            "that the token has the Editor (dashboards) or Admin (datasources) role."
        ) from exc
    except OSError as exc:
        raise PsmonError(f"cannot reach Grafana at {redact_url(url)}: {redact_text(str(exc))}") from exc
    return PushResult(folder_created, ds_result, versions)


def _ensure_folder(api: GrafanaApi) -> bool:
    try:
        api.folder.get_folder(FOLDER_UID)
        return False
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
    api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    return True


def _upsert_datasource(api: GrafanaApi, ds: dict[str, Any]) -> str:
    try:
        api.datasource.get_datasource_by_uid(ds["uid"])
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
        api.datasource.create_datasource(ds)
        return "created"
    api.datasource.update_datasource_by_uid(ds["uid"], ds)
    return "updated"
