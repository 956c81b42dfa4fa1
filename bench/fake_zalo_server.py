"""A fake Zalo OpenAPI over real HTTP on loopback, answering after a fixed latency (benchmarks, fault tests)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeZalo:
    def __init__(
        self,
        latency: float = 0.02,
        on_request: Callable[[int], None] | None = None,
        refuse: Callable[[str], int | None] | None = None,
    ) -> None:
        self.latency = latency
        self.on_request = on_request  # called with the request number before answering (fault injection)
        # Called with the recipient first: an HTTP status to answer with an empty body instead (a gateway
        # error: the message certainly did not reach Zalo and is not counted).
        self.refuse = refuse
        self.received: Counter[str] = Counter()  # user_id -> messages received
        self.first_at: dict[str, float] = {}  # user_id -> time.perf_counter() of the first message
        self.last_at: dict[str, float] = {}  # and of the latest
        self.arrivals: list[float] = []  # time.perf_counter() of every message, in order
        self.count = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeZalo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as Zalo's HTTPS API (a connection per call is not the shop's cost); no Nagle, or the
            # body written after the headers waits for a delayed ACK (40 ms).
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:  # the sender died mid-request: like Zalo, nothing was received
                    self.close_connection = True
                    return
                if self.path.endswith("/v4/oa/access_token"):  # the token keeper's refresh (a form body)
                    return self._json({"access_token": "t", "refresh_token": "r", "expires_in": "90000"})
                body: dict[str, Any] = json.loads(raw or b"{}")
                user_id = str(body.get("recipient", {}).get("user_id") or body.get("user_id") or "")
                status = fake.refuse(user_id) if fake.refuse is not None else None
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with fake.lock:
                    fake.count += 1
                    number = fake.count
                    fake.received[user_id] += 1
                    fake.first_at.setdefault(user_id, time.perf_counter())
                    fake.last_at[user_id] = time.perf_counter()
                    fake.arrivals.append(fake.last_at[user_id])
                if fake.on_request is not None:
                    fake.on_request(number)
                time.sleep(fake.latency)
                payload = json.dumps({"error": 0, "message": "Success", "data": {"message_id": f"m{number}"}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except BrokenPipeError:  # the client gave up waiting (a read-timeout fault): Zalo has it anyway
                    pass

            def do_GET(self) -> None:  # noqa: N802 - user/detail of a follower
                profile = {"display_name": "Khách", "user_is_follower": True}
                self._json({"error": 0, "message": "Success", "data": profile})

            def _json(self, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
