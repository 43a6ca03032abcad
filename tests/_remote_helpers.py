"""A file server on loopback for the shard-cache tests (fsspec's http filesystem reads it).

It serves one directory with ``Range`` support and ``Last-Modified``, counts the bytes it
sends per file (so a test can prove a shard was downloaded once), and can be told to cut a
file's transfer after some bytes, as a server going away mid-download would.
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ShardServer:
    """``ShardServer(root)``: start(), url, sent[name], cut_after[name] = n, stop()."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.sent: Counter[str] = Counter()
        self.cut_after: dict[str, int] = {}
        self.down = False
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _target(self) -> Path | None:
                name = self.path.lstrip("/").split("?", 1)[0]
                path = server.root / name
                return path if path.is_file() else None

            def _headers(self, path: Path, status: int, length: int, extra: dict) -> None:
                self.send_response(status)
                st = path.stat()
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header(
                    "Last-Modified", email.utils.formatdate(st.st_mtime_ns / 1e9, usegmt=True)
                )
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()

            def do_HEAD(self) -> None:
                path = self._target()
                if path is None or server.down:
                    self.send_error(404 if path is None else 503)
                    return
                self._headers(path, 200, path.stat().st_size, {})

            def do_GET(self) -> None:
                path = self._target()
                if path is None or server.down:
                    self.send_error(404 if path is None else 503)
                    return
                data = path.read_bytes()
                start, end = 0, len(data)
                status, extra = 200, {}
                match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1))
                    end = min(len(data), int(match.group(2)) + 1 if match.group(2) else len(data))
                    status = 206
                    extra = {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
                body = data[start:end]
                name = path.name
                with server._lock:
                    limit = server.cut_after.get(name)
                    if limit is not None:
                        allowed = max(0, limit - server.sent[name])
                        if allowed < len(body):
                            # Announce everything, send part, hang up: a dropped transfer.
                            self._headers(path, status, len(body), extra)
                            self.wfile.write(body[:allowed])
                            server.sent[name] += allowed
                            self.close_connection = True
                            return
                    server.sent[name] += len(body)
                self._headers(path, status, len(body), extra)
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> ShardServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def file_size(path: str | os.PathLike[str]) -> int:
    return os.stat(path).st_size
