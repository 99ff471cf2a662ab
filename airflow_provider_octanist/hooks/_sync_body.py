"""
The sync hook's requests session, and each answer held to a total deadline: its status line and
headers, then its body piece by piece (requests bounds each socket read, never the whole answer).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import lru_cache
from time import monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests
    from requests.adapters import HTTPAdapter

    from airflow_provider_octanist._api import Answer, Call, Settings


class DeadlinePassedError(Exception):
    """The answer was still arriving when the attempt's total deadline passed."""


class TooLargeError(Exception):
    """The answer's body, decoded, grew past the bytes allowed; it was not read further."""


_head_deadline: ContextVar[float | None] = ContextVar("octanist_head_deadline", default=None)


@contextmanager
def head_deadline(deadline: float) -> Iterator[None]:
    """
    Cut off the status line and headers of the requests sent in this block at ``deadline`` (monotonic).

    It holds for connections of an adapter from :func:`deadline_adapter`: when the deadline passes
    while they wait for an answer's head, their socket is shut and :class:`DeadlinePassedError` raised.
    """
    token = _head_deadline.set(deadline)
    try:
        yield
    finally:
        _head_deadline.reset(token)


_PRUNE_AT = 1024
"""Alarms kept before the cancelled ones among them are dropped (each request cancels its own)."""


class _Watchdog:
    """
    One daemon thread that runs callbacks at their deadlines (monotonic), for every sync request.

    A ``threading.Timer`` per request would start a thread each time (about 0.15 ms, a fifth of a
    fast request); arming this one is a heap push.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._alarms: list[list[Any]] = []  # [when, sequence, callback or None once cancelled]
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> list[Any]:
        """Run ``callback`` at ``when`` unless :meth:`cancel` comes first; returns the alarm."""
        alarm = [when, next(self._sequence), callback]
        with self._wake:
            if len(self._alarms) >= _PRUNE_AT:  # cancelled alarms wait for their turn: drop them now
                self._alarms = [live for live in self._alarms if live[2] is not None]
                heapq.heapify(self._alarms)
            heapq.heappush(self._alarms, alarm)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="octanist-deadlines", daemon=True)
                self._thread.start()
            if self._alarms[0] is alarm:
                self._wake.notify()
        return alarm

    @staticmethod
    def cancel(alarm: list[Any]) -> None:
        """Disarm ``alarm``; a callback already running at its deadline runs to its end."""
        alarm[2] = None

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._alarms and self._alarms[0][2] is None:
                    heapq.heappop(self._alarms)
                if not self._alarms:
                    self._wake.wait()
                    continue
                left = self._alarms[0][0] - monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                callback = heapq.heappop(self._alarms)[2]
                if callback is not None:
                    self._wake.release()
                    try:
                        callback()
                    finally:
                        self._wake.acquire()


_WATCHDOG = _Watchdog()


def deadline_adapter(**kwargs: Any) -> HTTPAdapter:
    """A requests ``HTTPAdapter`` (``kwargs`` as for it) whose connections honour :func:`head_deadline`."""
    return _adapter_class()(**kwargs)


class _Cut:
    """Shuts a connection's socket when the deadline of its answer's head passes, and remembers it did."""

    __slots__ = ("_connection", "done")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.done = threading.Event()

    def __call__(self) -> None:
        self.done.set()
        with suppress(OSError, AttributeError):  # already closed, or never connected
            self._connection.sock.shutdown(socket.SHUT_RDWR)


@lru_cache(maxsize=1)
def _adapter_class() -> type[HTTPAdapter]:
    # Built on first use: requests and urllib3 are imported only when a sync call is made.
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class HeadBound:
        """Waits for an answer's head no longer than the block's deadline, by shutting the socket then."""

        sock: socket.socket | None

        def getresponse(self) -> Any:
            deadline = _head_deadline.get()
            if deadline is None:
                return super().getresponse()  # type: ignore[misc]
            cut = _Cut(self)
            alarm = _WATCHDOG.call_at(deadline, cut)
            try:
                return super().getresponse()  # type: ignore[misc]
            except BaseException:
                if cut.done.is_set():
                    raise DeadlinePassedError from None
                raise
            finally:
                _WATCHDOG.cancel(alarm)

    class BoundConnection(HeadBound, HTTPConnection):  # type: ignore[misc]
        pass

    class BoundTLSConnection(HeadBound, HTTPSConnection):  # type: ignore[misc]
        pass

    class BoundPool(HTTPConnectionPool):  # type: ignore[misc]
        ConnectionCls = BoundConnection

    class BoundTLSPool(HTTPSConnectionPool):  # type: ignore[misc]
        ConnectionCls = BoundTLSConnection

    class DeadlineAdapter(HTTPAdapter):  # type: ignore[misc]
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": BoundPool, "https": BoundTLSPool}

    return DeadlineAdapter


PIECE = 65_536
"""Bytes asked for per read; ``read1`` returns whatever has arrived, up to this."""


def read_body(response: requests.Response, deadline: float, max_bytes: int) -> bytes:
    """
    The whole body of a streamed ``response``, or :class:`DeadlinePassedError` at ``deadline`` (monotonic).

    Reads with ``read1``, which returns as soon as any bytes are there, and checks the clock between
    reads, so the deadline is overrun by at most one read (a pause of the server's, itself bounded by
    the read timeout). The body is counted as it is decoded, and ``TooLargeError`` raised as
    soon as it holds more than ``max_bytes``: urllib3 decodes at most one piece per read, so a gzip
    bomb never unfolds in memory. Errors of urllib3 are raised as the requests exceptions they stand
    for; a body that does not decode as its ``Content-Encoding`` says is ``ContentDecodingError``.
    """
    import requests
    import urllib3.exceptions

    raw = response.raw
    # urllib3 < 2.3 has no read1; its read(amt) waits for amt bytes, so ask for less there.
    read1 = getattr(raw, "read1", None)
    pieces: list[bytes] = []
    size = 0
    try:
        while True:
            if monotonic() > deadline:
                raise DeadlinePassedError
            piece = read1(PIECE, decode_content=True) if read1 else raw.read(1024, decode_content=True)
            if not piece:
                break  # read1 answers b"" only at the end of the body
            size += len(piece)
            if size > max_bytes:
                raise TooLargeError
            pieces.append(piece)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from None
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    return b"".join(pieces)


def new_session(settings: Settings, pool_size: int) -> requests.Session:
    """
    The sync hook's session: ``pool_size`` connections kept open, each answer held to its deadline.

    :raises OctanistConnectionError: the environment names a proxy the sync hook cannot use.
    """
    import requests

    from airflow_provider_octanist.hooks._proxies import SYNC_PROXIES, environment_proxy

    # requests picks the environment's proxy for every request; one it cannot use is said
    # here, clearly, rather than as a failed request retried.
    environment_proxy(settings, SYNC_PROXIES)
    session = requests.Session()
    # Retries are ours (see _api.Attempts): they know which calls are safe to replay.
    adapter = deadline_adapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def exchange(session: requests.Session, call: Call, settings: Settings, deadline: float) -> Answer:
    """
    Send ``call`` through ``session``; return its answer, head and body read by ``deadline`` (monotonic).

    :raises DeadlinePassedError: the answer was still arriving at ``deadline``.
    :raises OctanistResponseError: the body grew past the size cap, or is not what its encoding says.
    :raises requests.exceptions.RequestException: no answer came (see ``hooks/_failures.py``).
    """
    import requests

    from airflow_provider_octanist import _api as api

    # The head under a deadline, the body streamed: the whole answer keeps to the attempt's.
    with head_deadline(deadline):
        response = session.request(
            call.method,
            settings.url(call.path),
            params=call.params,
            json=call.body,
            headers=settings.headers(with_body=call.body is not None),
            timeout=(settings.connect_timeout, settings.read_timeout),
            allow_redirects=False,
            verify=settings.verify,
            stream=True,
        )
    try:
        content = read_body(response, deadline, settings.max_response_bytes)
    except TooLargeError:
        raise api.answer_too_large(call, response.status_code, settings) from None
    except requests.exceptions.ContentDecodingError:
        raise api.undecodable_answer(call, response.status_code, response.headers) from None
    finally:
        response.close()
    return api.Answer(response.status_code, response.headers, content)
