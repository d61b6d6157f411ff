"""vmwave's transfer server: converted images served to CDI over HTTPS, one token per image.

CDI imports each disk as an ``http`` source: the URL names the disk (the same
path in every run of a wave), a Secret holds ``Authorization: Bearer <token>``
(``secretExtraHeaders``) and a ConfigMap holds the CA (``certConfigMap``). A
token opens exactly one path; HEAD and Range work, so an interrupted import
can continue. A worker process runs one server (``TransferServer.shared``).
"""

from __future__ import annotations

import functools
import http.server
import re
import secrets
import ssl
import threading
from pathlib import Path

from vmwave.errors import InputError, VmwaveError

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_shared_lock = threading.Lock()


class TransferServer:
    def __init__(self, cert: Path, key: Path, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None):
        self.images: dict[str, tuple[str, Path]] = {}  # token -> (path, image)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # tokens are in headers, never logged
                pass

            def _image(self) -> Path | None:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                path, image = server.images.get(token, ("", None))
                if image is None or self.path.split("?")[0] != path:
                    self.send_error(403, "this token does not open this image")
                    return None
                return image

            def do_HEAD(self):
                image = self._image()
                if image is not None:
                    self.send_response(200)
                    self.send_header("Content-Length", str(image.stat().st_size))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()

            def do_GET(self):
                image = self._image()
                if image is None:
                    return
                size = image.stat().st_size
                start, end = 0, size - 1
                m = _RANGE.match(self.headers.get("Range", ""))
                if m:
                    start, end = int(m.group(1)), int(m.group(2) or size - 1)
                    if start >= size:
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                with open(image, "rb") as handle:
                    handle.seek(start)
                    left = end - start + 1
                    while left > 0 and (chunk := handle.read(min(left, 4 << 20))):
                        self.wfile.write(chunk)
                        left -= len(chunk)

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = public_url or f"https://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "TransferServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @classmethod
    def shared(cls, cert: Path, key: Path, listen: str) -> "TransferServer":
        """This process's server for ``listen`` (HOST:PORT, port 0 for a free one), started on first use."""
        with _shared_lock:
            return _shared(Path(cert), Path(key), listen)

    def publish(self, path: str, image: Path) -> str:
        """Serve ``image`` at ``path`` to whoever presents the returned token; the token opens nothing else."""
        token = secrets.token_urlsafe(32)
        self.images[token] = (path, image)
        return token

    def retract(self, token: str) -> None:
        self.images.pop(token, None)


@functools.cache
def _shared(cert: Path, key: Path, listen: str) -> TransferServer:
    host, _, port = listen.rpartition(":")
    try:
        return TransferServer(cert, key, host or "127.0.0.1", int(port or 0)).__enter__()
    except ValueError:
        raise InputError("VMWAVE_TRANSFER_LISTEN", listen, "is not HOST:PORT", "write e.g. 0.0.0.0:8443") from None
    except OSError as exc:
        raise VmwaveError(f"the transfer server cannot listen on {listen} ({exc.strerror})",
                          "set VMWAVE_TRANSFER_LISTEN to a free HOST:PORT (port 0 picks one)") from None
