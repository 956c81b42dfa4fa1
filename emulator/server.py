"""Serving the demo: Werkzeug's server, but keeping Zalo's underscore headers for the emulator."""

from __future__ import annotations

from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class KeepUnderscoreHeaders(WSGIRequestHandler):
    """Werkzeug drops headers with underscores (a spoofing guard behind proxies); Zalo's API uses
    `access_token` and `secret_key`, so the emulator would never see them. Demo server only."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper()] = value
        return environ


def make_demo_server(host: str, port: int, app: Any) -> BaseWSGIServer:
    return make_server(host, port, app, threaded=True, request_handler=KeepUnderscoreHeaders)
