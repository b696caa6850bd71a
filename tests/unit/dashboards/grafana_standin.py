"""A small local stand-in for the Grafana HTTP API (the one allowed mock: no Grafana server installs here).

It implements just the endpoints `psmon dashboards push` uses, with Grafana's status codes and
rules (404 for unknown folder/datasource UIDs, 409 for a duplicate create, 412 when a dashboard
UID exists and `overwrite` is false, version bumped on every save), checks the Bearer token,
and records every call so tests can assert paths and payloads.
"""

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    method: str
    path: str
    body: Any


@dataclass
class GrafanaState:
    token: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)


def _handler(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            path = self.path.split("?")[0]
            state.calls.append(Call(method, path, body))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._reply(401, {"message": "Unauthorized"})
            route = (method, path)
            if (m := re.fullmatch(r"/api/folders/([^/]+)", path)) and method == "GET":
                f = state.folders.get(m.group(1))
                return self._reply(200, f) if f else self._reply(404, {"message": "folder not found"})
            if route == ("POST", "/api/folders"):
                uid = body["uid"]
                if uid in state.folders:
                    return self._reply(409, {"message": "a folder with the same uid already exists"})
                state.folders[uid] = {"id": len(state.folders) + 1, "uid": uid, "title": body["title"]}
                return self._reply(200, state.folders[uid])
            if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
                uid = m.group(1)
                if method == "GET":
                    ds = state.datasources.get(uid)
                    return self._reply(200, ds) if ds else self._reply(404, {"message": "Data source not found"})
                if method == "PUT":
                    if uid not in state.datasources:
                        return self._reply(404, {"message": "Data source not found"})
                    state.datasources[uid] = {**body, "id": state.datasources[uid]["id"]}
                    return self._reply(200, {"message": "Datasource updated", "datasource": state.datasources[uid]})
            if route == ("POST", "/api/datasources"):
                if body["uid"] in state.datasources or any(
                    d["name"] == body["name"] for d in state.datasources.values()
                ):
                    return self._reply(409, {"message": "data source with the same name already exists"})
                state.datasources[body["uid"]] = {**body, "id": len(state.datasources) + 1}
                return self._reply(200, {"message": "Datasource added", "datasource": state.datasources[body["uid"]]})
            if route == ("POST", "/api/dashboards/db"):
                dash = body.get("dashboard") or {}
                uid, title = dash.get("uid"), dash.get("title")
                if not uid or not title or not isinstance(dash.get("panels"), list):
                    return self._reply(400, {"message": "dashboard needs uid, title and panels"})
                folder = body.get("folderUid")
                if folder and folder not in state.folders:
                    return self._reply(400, {"message": "folder not found"})
                old = state.dashboards.get(uid)
                if old and not body.get("overwrite"):
                    return self._reply(
                        412, {"status": "name-exists", "message": "A dashboard with the same uid already exists"}
                    )
                if dash.get("id") is not None and (not old or old["id"] != dash["id"]):
                    return self._reply(404, {"status": "not-found", "message": "Dashboard not found"})
                version = old["version"] + 1 if old else 1
                ident = old["id"] if old else len(state.dashboards) + 1
                state.dashboards[uid] = {"id": ident, "version": version, "folderUid": folder, "dashboard": dash}
                return self._reply(
                    200,
                    {
                        "id": ident,
                        "uid": uid,
                        "url": f"/d/{uid}/x",
                        "status": "success",
                        "version": version,
                        "slug": "x",
                    },
                )
            return self._reply(404, {"message": f"no route {method} {path}"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


class GrafanaStandIn:
    def __init__(self, token: str):
        self.state = GrafanaState(token=token)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "GrafanaStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
