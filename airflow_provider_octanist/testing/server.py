"""
A real HTTP server on loopback that speaks the Octanist REST API, for tests, demos and benchmarks.

``FakeOctanistServer`` is the public façade: it keeps leads in memory (``_store``), answers as the
API documents (``_endpoints``, ``_reports``, ``_query``, ``_envelope``), records every request
(``_records``), misbehaves on demand (``_faults``, ``_fault_answers``) and serves HTTP/1.1 with
keep-alive (``_http``). It uses the standard library only, so importing it is cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing import _fault_answers
from airflow_provider_octanist.testing._endpoints import dispatch
from airflow_provider_octanist.testing._faults import FAULT_KINDS, Fault, FaultQueue, make_fault
from airflow_provider_octanist.testing._http import Delivery, HTTPServer, serve
from airflow_provider_octanist.testing._lead_fields import (
    CLICK_ID_FIELDS,
    CONSENT_FIELDS,
    LEAD_FIELDS,
    TIMESTAMP_FIELDS,
    UTM_FIELDS,
    format_timestamp,
    normalize_status,
    parse_timestamp,
)
from airflow_provider_octanist.testing._records import API_KEY_HEADER, REDACTED, HeaderDict, RecordedRequest
from airflow_provider_octanist.testing._store import LeadStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from airflow_provider_octanist.testing._envelope import Response

__all__ = ["FAULT_KINDS", "FakeOctanistServer", "Fault", "RecordedRequest"]
# Also importable from here, as before the package was split into modules:
_REEXPORTED = (
    API_KEY_HEADER, REDACTED, HeaderDict, CLICK_ID_FIELDS, CONSENT_FIELDS, LEAD_FIELDS, TIMESTAMP_FIELDS,
    UTM_FIELDS, format_timestamp, parse_timestamp,
)  # fmt: skip

log = logging.getLogger(__name__)


class FakeOctanistServer(LeadStore):
    """
    An in-memory Octanist API served over real HTTP on loopback, for tests, demos and benchmarks.

    Use it as a context manager (``with FakeOctanistServer() as server:``) or call ``start()`` and
    ``stop()``. Point a connection at ``server.url`` with ``server.api_key`` as its password.

    :param api_key: the only ``X-API-KEY`` value the server accepts.
    :param host: interface to listen on; keep the default loopback address.
    :param port: TCP port; ``0`` picks a free ephemeral port (read it back from ``port``).
    :param bulk_updates: whether ``PATCH /leads`` by email/phone may update several leads at once
        (the organisation setting); without it such a request is answered ``409 CONFLICT``.
    :param latency: seconds added before every response.
    :param timestamp_precision: ``ms`` (the API's format, default) or ``us``: the precision of every
        timestamp the server writes (stored leads, ``meta.timestamp``); time filters honour it.
    :param printed_precision: print timestamps in this precision instead of the stored one
        (``timestamp_precision="us", printed_precision="ms"``: microseconds stored and compared,
        milliseconds printed, as a web app over a SQL database may do).
    :param strict_dates: answer ``400 INVALID_DATE`` to a time filter finer than milliseconds, as
        a server holding to the documented format would (also settable later as ``strict_dates``).

    The quirks of a real deployment are switches on the instance, set at any time and combinable
    (``docs/testing.md`` says what a real server would be doing for each):

    - ``timestamp_precision`` / ``printed_precision`` (above): stamps in ms or µs, printed coarser;
    - ``clock_precision``: ``meta.timestamp`` in another precision than the stamps (``ms`` over µs);
    - ``clock_offset`` (a ``timedelta``): the server's clock is off; stamps and ``meta.timestamp``
      both follow it;
    - ``stale_timestamp``: every success answer's ``meta.timestamp`` is this fixed text;
    - ``omit_timestamp``: success answers carry no ``meta.timestamp`` at all;
    - ``page_cap``: fewer leads per page than ``limit`` asks;
    - ``gte_as_gt``: ``[gte]`` time filters applied as ``[gt]``;
    - ``ignore_page``: every page of a listing is its first;
    - ``lying_pagination``: ``hasMore`` always true, the last page repeated past the end;
    - ``refused_filters``: lead fields whose list filters are answered ``400 INVALID_FILTER``;
    - ``strict_dates`` (above): a time filter finer than milliseconds is ``400 INVALID_DATE``;

    and the methods ``set_statuses`` (a bulk update: many leads at one instant, seen at once),
    ``change_during_listing`` (a listing that shifts while it is paged), ``delete_lead``,
    ``inject`` (faulty answers, also in the middle of a walk with ``after=``), ``revoke_key``
    (the key refused after a number of requests) and ``restore_key``.
    """

    def __init__(
        self,
        api_key: str = "test-api-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bulk_updates: bool = False,
        latency: float = 0.0,
        timestamp_precision: str = "ms",
        printed_precision: str | None = None,
        strict_dates: bool = False,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string.")
        super().__init__(
            bulk_updates=bulk_updates,
            timestamp_precision=timestamp_precision,
            printed_precision=printed_precision,
        )
        self.strict_dates = strict_dates
        self.api_key = api_key
        self.host = host
        self.latency = latency
        self._requested_port = port
        self._requests: list[RecordedRequest] = []
        self._faults = FaultQueue()
        self._timers: list[threading.Timer] = []
        self._connections: dict[int, socket.socket] = {}
        self._connections_opened = 0
        self._streamed: list[int] = []
        self._stream_ended_cond = threading.Condition()
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._waker: tuple[socket.socket, socket.socket] | None = None
        self._stopped = False
        self._key_uses_left: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOctanistServer:
        """Bind the port and serve in a daemon thread; return ``self``."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(
                    "This FakeOctanistServer was stopped; create a new one instead of restarting it."
                )
            if self._httpd is not None:
                raise RuntimeError("This FakeOctanistServer is already running.")
            httpd = HTTPServer((self.host, self._requested_port), self)
            self._httpd = httpd
            self._waker = socket.socketpair()
            self._thread = threading.Thread(
                target=serve,
                args=(httpd, self._waker[0], self._stopping),
                name=f"fake-octanist-{httpd.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        log.debug("Fake Octanist API listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving: cancel scheduled changes, close the listener and all connections; idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._stopping.set()
            timers, self._timers = self._timers, []
            httpd, thread, waker = self._httpd, self._thread, self._waker
            connections = list(self._connections.values())
        for timer in timers:
            timer.cancel()
        if waker is not None:
            with contextlib.suppress(OSError):
                waker[1].send(b"\0")
        if thread is not None:
            thread.join(timeout=5)
        # Idle keep-alive connections sit in a blocking read; shutting the socket down wakes them.
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if httpd is not None:
            httpd.server_close()
        if waker is not None:
            for end in waker:
                end.close()
        for timer in timers:
            timer.join(timeout=1)

    def __enter__(self) -> FakeOctanistServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._httpd is not None and not self._stopped

    @property
    def port(self) -> int:
        """The TCP port the server listens on (known once started)."""
        if self._httpd is None:
            raise RuntimeError(
                "The FakeOctanistServer has no port yet: call start() or use it as a context manager."
            )
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the API including ``/api``, e.g. ``http://127.0.0.1:54321/api``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api"

    @property
    def connection_json(self) -> str:
        """The Airflow connection for this server as JSON, ready for ``AIRFLOW_CONN_OCTANIST_DEFAULT``."""
        return json.dumps({"conn_type": "octanist", "host": self.url, "password": self.api_key})

    def __repr__(self) -> str:
        where = self.url if self.is_running else "stopped" if self._stopped else "not started"
        return f"<FakeOctanistServer {where} leads={len(self._leads)}>"

    # -- data (the rest is inherited from LeadStore) ----------------------------------------------

    def schedule_status(
        self,
        lead_id: str,
        status: str,
        *,
        after: float,
        value: float | None = None,
        loss_reason: str | None = None,
    ) -> None:
        """
        Change a lead's status from a background timer after ``after`` seconds (``stop()`` cancels it).

        :param lead_id: the lead's id; it must exist now.
        :param status: the status to set then.
        :param after: delay in seconds.
        :param value: the value to set with the status, if any.
        :param loss_reason: the loss reason to set with ``lost``, if any.
        """
        normalize_status(status)
        self.lead(lead_id)
        timer = threading.Timer(
            after,
            self.set_status,
            args=(lead_id, status),
            kwargs={"value": value, "loss_reason": loss_reason},
        )
        timer.daemon = True
        timer.name = f"fake-octanist-schedule-{lead_id}"
        with self._lock:
            if self._stopped:
                raise RuntimeError("This FakeOctanistServer was stopped; nothing can be scheduled on it.")
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
            timer.start()

    # -- observation ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """
        Count received requests, optionally only those with a method and/or exact decoded path.

        :param method: HTTP method, any case; ``None`` for all.
        :param path: decoded path without query, e.g. ``/api/leads``; ``None`` for all.
        """
        wanted = None if method is None else method.upper()
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (wanted is None or r.method == wanted) and (path is None or r.path == path)
            )

    def clear_requests(self) -> None:
        """Forget every recorded request (``connections_opened`` is kept)."""
        with self._lock:
            self._requests.clear()

    @property
    def connections_opened(self) -> int:
        """How many TCP connections have been accepted; keep-alive reuse shows as fewer than requests."""
        with self._lock:
            return self._connections_opened

    def streamed_bytes(self, answers: int = 1, *, timeout: float = 10.0) -> list[int]:
        """
        Body bytes written for each ``huge`` answer, in order, once ``answers`` of them have ended.

        An answer ends when all of it was written or when the client closed the connection; a
        client that stops reading early leaves a number well below the answer's length. Waits at
        most ``timeout`` seconds for the answers to end, then raises ``TimeoutError``.
        """
        with self._stream_ended_cond:
            if not self._stream_ended_cond.wait_for(lambda: len(self._streamed) >= answers, timeout):
                raise TimeoutError(
                    f"{len(self._streamed)} of {answers} huge answer(s) ended within {timeout} s: "
                    "the client is still reading (or never asked)."
                )
            return list(self._streamed)

    # -- fault injection ------------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        count: int | None = 1,
        method: str | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
        after: int = 0,
        **options: Any,
    ) -> None:
        """
        Make the next ``count`` matching requests misbehave; faults are used first-in, first-out.

        With ``after``, that many matching requests are answered normally first: an answer that
        fails in the middle of a walk (``inject("status", status=503, count=4, after=2,
        path="/api/leads")``: pages 1 and 2 are served, then four 503s).

        Kinds and their options:

        - ``status``: answer ``status`` (e.g. 429, 500, 503) with an error envelope; ``retry_after``
          (seconds, HTTP-date string or datetime) adds ``Retry-After``; ``body`` sends that raw text
          instead; ``code``/``message`` override the envelope's; ``content_type`` for ``body``.
        - ``delay``: wait ``seconds`` first, then answer normally (the request still takes effect).
        - ``garbage``: answer ``status`` (200) with a non-JSON ``body`` (an HTML error page).
        - ``truncated``: process normally (or use ``payload``), promise the full ``Content-Length``,
          send half of the body and close the connection.
        - ``drop``: close the connection without answering; with ``process=True`` the request takes
          effect first, like a server that crashed after committing.
        - ``json``: answer ``status`` (200) with ``payload`` as the JSON body, e.g. ``{"success": false}``.

        Hostile answers (each one deterministic; those marked *normal* first answer the request as
        the API would, so it takes effect, then change the answer):

        - ``drip``: *normal*, then send the body ``chunk`` (1) bytes at a time, waiting ``interval``
          seconds before each piece, so no single read times out but the request takes long;
          ``headers=True`` drips the status line and headers too.
        - ``unsorted``: *normal*, except that ``GET /leads`` ignores ``sort``: the matching leads
          are paged in ``order`` ``insertion`` (default), ``reversed`` or ``shuffled`` (by ``seed``, 0).
        - ``corrupt_lead``: *normal*, then overwrite ``fields`` (a dict, e.g. ``{"id": 42}``,
          ``{"status": None}`` or ``{"value": float("nan")}``, sent as a bare ``NaN``) in the lead
          at ``index`` (0) of a list answer, or in the lead of a single-lead answer.
        - ``wrong_lead``: *normal*, then ``GET /leads/{id}`` carries another lead: ``lead_id`` if
          given (it must exist), else the first other stored lead, else a copy with another id.
        - ``nested``: answer ``status`` (200) with ``data`` nested ``depth`` (100,000) arrays deep.
        - ``envelope``: *normal*, then set the envelope's ``success``, ``data``, ``meta`` or
          ``error`` to the value given (``None`` is JSON ``null``) and drop the keys in ``remove``.
        - ``echo_key``: answer ``status`` (401) with an error envelope whose message is ``message``
          (``"Invalid API key: {key}"``) with ``{key}`` replaced by the ``X-API-KEY`` sent.
        - ``repeat_pages``: *normal*, except that a ``GET /leads`` for page 2 or later carries page
          1's leads except the first, with ``hasMore`` ``has_more`` (``True``); with ``fresh`` (a
          count), the page's own first ``fresh`` leads and then page 1's from position ``fresh``.
        - ``huge``: answer 200 with a JSON body of ``decoded_bytes`` bytes (an envelope padded with
          spaces), generated as it is sent; ``gzip=True`` sends it gzip-compressed (about a
          thousandth of the size on the wire: a gzip bomb). ``streamed_bytes()`` tells how much
          of it was written before the client stopped reading. ``values=True`` fills ``data`` with
          empty objects (``[{}, {}, ...]``) instead: a JSON value every three bytes.
        - ``mislabelled``: *normal*, then the answer says ``Content-Encoding: <encoding>``
          (``gzip``) while its body stays plain JSON.
        - ``transform``: *normal*, then ``function(payload)`` gets the decoded JSON answer and
          returns the payload to send (written as JSON, non-finite floats as bare ``NaN`` /
          ``Infinity``) or ``str``/``bytes`` to send exactly; a non-JSON answer is sent unchanged.

        Leads dated in the future need no fault: ``add_lead(updatedAt=...)`` takes any time, and
        every answer's ``meta.timestamp`` is the server's clock. For microsecond timestamps create
        the server with ``timestamp_precision="us"``. A huge error message is
        ``inject("status", status=500, message="x" * 5_000_000)``.

        A faulty answer replaces authentication and routing (except for the *normal* kinds, whose
        answer is the API's own); ``latency`` still applies.

        :param fault: the kind, one of ``FAULT_KINDS``.
        :param count: how many matching requests it applies to; ``None`` for every matching
            request until ``clear_faults()``.
        :param method: only requests with this method (any case).
        :param path: only requests with exactly this decoded path, e.g. ``/api/leads``.
        :param path_prefix: only requests whose decoded path starts with this, e.g. ``/api/leads/``.
        :param after: matching requests answered normally before the fault applies (0: the next).
        :param options: the kind's options, listed above.
        """
        self._faults.add(
            make_fault(
                fault,
                count=count,
                method=method,
                path=path,
                path_prefix=path_prefix,
                options=options,
                after=after,
            )
        )

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not used up yet, in the order they will be applied (``count`` is what is left)."""
        return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    # -- internals: what the HTTP plumbing calls ------------------------------------------------

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections_opened += 1
            connection_id = self._connections_opened
            self._connections[connection_id] = sock
            if self._stopping.is_set():
                # Accepted while stop() ran: end it now rather than leave a thread blocked on it.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return connection_id

    def _connection_closed(self, connection_id: int) -> None:
        with self._lock:
            self._connections.pop(connection_id, None)

    def _stream_ended(self, bytes_written: int) -> None:
        with self._stream_ended_cond:
            self._streamed.append(bytes_written)
            self._stream_ended_cond.notify_all()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def revoke_key(self, *, after: int = 0) -> None:
        """
        Refuse the API key (401) once ``after`` more requests have carried it, as Octanist would once
        someone revokes the key in its settings while a task is using it.

        :param after: requests still answered with the key, whatever they are.
        """
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be a whole number (0 or more), got {after!r}.")
        with self._lock:
            self._key_uses_left = after

    def restore_key(self) -> None:
        """Accept the API key again after ``revoke_key``, as when a revoked key is reinstated."""
        with self._lock:
            self._key_uses_left = None

    def _accepted_key(self, key: str | None) -> str:
        """The key this request is checked against: ``api_key``, or none at all once it is revoked."""
        with self._lock:
            if self._key_uses_left is None or key != self.api_key:
                return self.api_key
            if self._key_uses_left > 0:
                self._key_uses_left -= 1
                return self.api_key
        return "\x00revoked"  # a key no request carries

    def _answer(self, request: RecordedRequest, key: str | None) -> Delivery:
        """Apply any pending fault to one request and say what to send back."""
        fault = self._faults.take(request.method, request.path)
        self._pause(self.latency)
        if fault is None:
            return Delivery(dispatch(self, self._accepted_key(key), request, key))
        return _fault_answers.answer(
            fault, _fault_answers.Exchange({}, request, key, self, self._route(key), self._pause)
        )

    def _route(
        self, key: str | None
    ) -> Callable[[RecordedRequest, Callable[[list[Any]], list[Any]] | None], Response]:
        def route(request: RecordedRequest, list_order: Callable[[list[Any]], list[Any]] | None) -> Response:
            return dispatch(self, self.api_key, request, key, list_order)

        return route

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops so ``stop()`` never waits for a delay."""
        if seconds > 0:
            self._stopping.wait(seconds)
