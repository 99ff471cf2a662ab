"""
Holding a requests answer to a total deadline: its status line and headers, then its body piece by piece.

requests bounds each socket read, never the whole answer; a server may drip one byte at a time.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import lru_cache
from time import monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests
    from requests.adapters import HTTPAdapter


class DeadlinePassedError(Exception):
    """The answer was still arriving when the attempt's total deadline passed."""


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


def deadline_adapter(**kwargs: Any) -> HTTPAdapter:
    """A requests ``HTTPAdapter`` (``kwargs`` as for it) whose connections honour :func:`head_deadline`."""
    return _adapter_class()(**kwargs)


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
            cut = threading.Event()

            def shut() -> None:
                cut.set()
                with suppress(OSError, AttributeError):  # already closed, or never connected
                    self.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

            timer = threading.Timer(max(deadline - monotonic(), 0.0), shut)
            timer.daemon = True
            timer.start()
            try:
                return super().getresponse()  # type: ignore[misc]
            except BaseException:
                if cut.is_set():
                    raise DeadlinePassedError from None
                raise
            finally:
                timer.cancel()

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


def read_body(response: requests.Response, deadline: float) -> bytes:
    """
    The whole body of a streamed ``response``, or :class:`DeadlinePassedError` at ``deadline`` (monotonic).

    Reads with ``read1``, which returns as soon as any bytes are there, and checks the clock between
    reads, so the deadline is overrun by at most one read (a pause of the server's, itself bounded by
    the read timeout). Errors of urllib3 are raised as the requests exceptions they stand for.
    """
    import requests
    import urllib3.exceptions

    raw = response.raw
    # urllib3 < 2.3 has no read1; its read(amt) waits for amt bytes, so ask for less there.
    read1 = getattr(raw, "read1", None)
    pieces: list[bytes] = []
    try:
        while True:
            if monotonic() > deadline:
                raise DeadlinePassedError
            piece = read1(PIECE, decode_content=True) if read1 else raw.read(1024, decode_content=True)
            if not piece:
                break  # read1 answers b"" only at the end of the body
            pieces.append(piece)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    return b"".join(pieces)
