"""
The fake's socket and HTTP/1.1 plumbing: accepting connections, reading requests, writing answers.

It knows nothing of the API: each request is recorded and answered through a ``Host``.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_octanist.testing._records import API_KEY_HEADER, HeaderDict, RecordedRequest

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable

    from airflow_provider_octanist.testing._envelope import Response

log = logging.getLogger("airflow_provider_octanist.testing.server")

_MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    """
    How one answer goes on the wire.

    :param response: what to send; ``None`` closes the connection without answering.
    :param truncate: promise the full ``Content-Length``, send half the body, then close.
    :param drip_interval: send the body ``drip_chunk`` bytes at a time, waiting this many seconds
        before each piece; ``None`` sends it at once.
    :param drip_chunk: bytes per piece when dripping.
    :param drip_headers: drip the status line and headers too, not only the body.
    :param stream: the body as pieces made while it is sent (``response.body`` is then ignored),
        ``stream_length`` bytes in all; the host hears how many were written (``_stream_ended``).
    """

    response: Response | None
    truncate: bool = False
    drip_interval: float | None = None
    drip_chunk: int = 1
    drip_headers: bool = False
    stream: Iterable[bytes] | None = None
    stream_length: int = 0


class Host(Protocol):
    """What the plumbing needs from the server it serves."""

    def _connection_opened(self, sock: socket.socket) -> int: ...

    def _connection_closed(self, connection_id: int) -> None: ...

    def _record(self, request: RecordedRequest) -> None: ...

    def _answer(self, request: RecordedRequest, key: str | None) -> Delivery: ...

    def _pause(self, seconds: float) -> None: ...

    def _stream_ended(self, bytes_written: int) -> None: ...


class HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads never keep the process alive."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 resets connections when many clients connect at once.
    request_queue_size = 128
    # handle_request() is only called once the listener is readable: accept without waiting.
    timeout = 0

    def __init__(self, address: tuple[str, int], host: Host) -> None:
        self.host = host
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections reset by clients (or by ``stop()``) are normal here; anything else is logged."""
        log.debug("Fake Octanist connection from %s ended with an error", client_address, exc_info=True)


def serve(httpd: HTTPServer, wake: socket.socket, stopping: threading.Event) -> None:
    """Accept connections until ``stopping`` is set and ``wake`` readable; no poll delay on stop."""
    with selectors.DefaultSelector() as selector:
        selector.register(httpd, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while not stopping.is_set():
            ready = selector.select()
            if stopping.is_set():
                break
            if any(key.fileobj is httpd for key, _ in ready):
                httpd.handle_request()


class _BadRequestBodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Handler(BaseHTTPRequestHandler):
    """Reads each request, records it and sends the answer the host gives for it."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeOctanist/1.0"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per response on keep-alive connections).
    disable_nagle_algorithm = True
    server: HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.host._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.host._connection_closed(self.connection_id)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds method, path and query only; headers (and the key) are never logged.
        log.debug("fake octanist %s: " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BadRequestBodyError(400, "Bad Content-Length") from None
        if length < 0:
            raise _BadRequestBodyError(400, "Bad Content-Length")
        if length > _MAX_BODY_BYTES:
            raise _BadRequestBodyError(413, "Request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequestBodyError(400, "Bad chunked encoding") from None
            if chunk_size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            size += chunk_size
            if size > _MAX_BODY_BYTES:
                raise _BadRequestBodyError(413, "Request body too large")
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(65537)

    def _handle(self) -> None:
        host = self.server.host
        target = urlsplit(self.path)
        try:
            body = self._read_body()
        except _BadRequestBodyError as exc:
            self.close_connection = True
            self.send_error(exc.status, exc.message)
            return
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=self.command.upper(),
            path=unquote(target.path),
            query=parse_qs(target.query, keep_blank_values=True),
            body=parsed,
            headers=HeaderDict.redacted(self.headers.items()),
            connection_id=self.connection_id,
            raw_path=target.path,
            raw_body=body,
            received_at=time.monotonic(),
        )
        host._record(request)
        self._send(host._answer(request, self.headers.get(API_KEY_HEADER)))

    # These methods reach the API's router (which answers 405 where a route lacks them); others get 501.
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = _handle  # noqa: N815

    def _send(self, delivery: Delivery) -> None:
        response = delivery.response
        if response is None:
            self.close_connection = True
            return
        if delivery.drip_interval is not None and delivery.drip_headers:
            self._drip(self._head(response) + response.body, delivery)
            return
        if delivery.stream is not None:
            self._stream(response, delivery.stream, delivery.stream_length)
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if delivery.drip_interval is not None:
            self._drip(response.body, delivery)
        elif delivery.truncate:
            self.wfile.write(response.body[: len(response.body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(response.body)

    def _stream(self, response: Response, pieces: Iterable[bytes], length: int) -> None:
        """Send a body made piece by piece, stopping when the client stops reading (it closed)."""
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        written = 0
        try:
            for piece in pieces:
                self.wfile.write(piece)
                written += len(piece)
        except OSError:
            self.close_connection = True
        finally:
            self.server.host._stream_ended(written)

    def _head(self, response: Response) -> bytes:
        """The status line and headers of ``response`` as bytes, for sending them slowly."""
        self.log_request(response.status)
        reason = self.responses.get(response.status, ("",))[0]
        lines = [f"{self.protocol_version} {response.status} {reason}"]
        lines += [f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines += [f"Content-Length: {len(response.body)}", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def _drip(self, data: bytes, delivery: Delivery) -> None:
        """Send ``data`` a few bytes at a time, pausing before each piece (a slow-drip answer)."""
        interval, chunk = float(delivery.drip_interval or 0), delivery.drip_chunk
        for start in range(0, len(data), chunk):
            self.server.host._pause(interval)
            self.wfile.write(data[start : start + chunk])
            self.wfile.flush()
