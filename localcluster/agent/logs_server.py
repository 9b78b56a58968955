"""The kubelet endpoint the apiserver calls for ``kubectl logs``: HTTPS ``/containerLogs``.

The apiserver proxies ``pods/log`` to ``https://<node InternalIP>:<kubeletEndpoint.Port>/
containerLogs/<namespace>/<pod>/<container>`` with kubelet's query (follow, tailLines,
limitBytes, previous). It does not verify this certificate (no --kubelet-certificate-authority),
so the cluster CA signs it only for tidiness. Logs are the raw stdout+stderr of the container;
``timestamps`` and ``sinceSeconds`` are not supported.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from localcluster.agent.pods import PodWorker

log = logging.getLogger("localcluster.agent")

FindWorker = Callable[[str, str], PodWorker | None]
FOLLOW_POLL = 0.1


def tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class LogsServer:
    def __init__(self, find: FindWorker, cert: Path, key: Path) -> None:
        self.find = find
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="kubelet-logs", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        find = self.find

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                log.debug("kubelet endpoint: " + format, *args)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                parts = [unquote(p) for p in url.path.split("/") if p]
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self._error(404, f"not found: {url.path}")
                    return
                _, namespace, pod, container = parts
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                worker = find(namespace, pod)
                if worker is None:
                    self._error(404, f'pod "{pod}" not found on this node')
                    return
                state = worker.state_of(container)
                if state is None:
                    self._error(400, f'container "{container}" is not valid for pod "{pod}"')
                    return
                path = worker.log_path(container)
                if query.get("previous") == "true":
                    path = path.with_suffix(".previous.log")
                if not path.exists():
                    self._error(
                        400,
                        f'container "{container}" in pod "{pod}" is waiting to start: '
                        f"{state.reason or 'ContainerCreating'}",
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                # The reader may go away (kubectl logs -f interrupted).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self._stream(worker, container, path, query)

            def _stream(
                self, worker: PodWorker, container: str, path: Path, query: dict[str, str]
            ) -> None:
                limit = int(query["limitBytes"]) if "limitBytes" in query else None
                with path.open("rb") as handle:
                    data = handle.read()
                    if "tailLines" in query:
                        data = tail(data, int(query["tailLines"]))
                    sent = self._send(data, limit, 0)
                    if query.get("follow") != "true" or "previous" in query:
                        return
                    # Follow: keep sending what the container writes until it can write no more.
                    while limit is None or sent < limit:
                        chunk = handle.read()
                        if chunk:
                            sent = self._send(chunk, limit, sent)
                            continue
                        if not worker.may_write_more(container):
                            sent = self._send(handle.read(), limit, sent)
                            return
                        time.sleep(FOLLOW_POLL)

            def _send(self, data: bytes, limit: int | None, sent: int) -> int:
                if limit is not None:
                    data = data[: max(0, limit - sent)]
                if data:
                    self.wfile.write(data)
                    self.wfile.flush()
                return sent + len(data)

            def _error(self, code: int, message: str) -> None:
                body = message.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
