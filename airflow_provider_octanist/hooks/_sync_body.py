"""
Reading a requests response body against a total deadline, piece by piece as it arrives.

requests bounds each socket read, never the whole answer; a server may drip one byte at a time.
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests


class DeadlinePassedError(Exception):
    """The answer was still arriving when the attempt's total deadline passed."""


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
