"""
Reading an async answer's body within the connection's size cap, decoded a bounded piece at a time.

httpx decodes each read (up to 64 KiB on the wire) whole, and a gzip bomb unfolds a thousand times
that in one step; here the raw bytes (as either transport of the async hook received them) are
inflated with zlib's ``max_length`` instead.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from airflow_provider_octanist import _api as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

ACCEPT_ENCODING = "gzip, deflate"
"""What the async hook asks for: the encodings ``BodyDecoder`` inflates itself."""

PIECE = 65_536
"""Decoded bytes produced per step, at most."""


class UndecodableError(Exception):
    """The body is not what its ``Content-Encoding`` says."""


class BodyDecoder:
    """
    Inflate a body as its ``Content-Encoding`` says, never more than ``PIECE`` bytes per step.

    :param encoding: the answer's ``Content-Encoding`` header (empty for none).
    """

    def __init__(self, encoding: str) -> None:
        name = encoding.strip().lower()
        self._raw_deflate_next = False
        self._inflater: zlib._Decompress | None
        if name in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif name == "deflate":
            # Servers send deflate zlib-wrapped or raw; the first bytes tell which, as httpx does.
            self._inflater = zlib.decompressobj()
            self._raw_deflate_next = True
        else:
            # None, identity, or one not asked for: read as it came, as requests and httpx do; a
            # body that is not what it should be is then not JSON either, and refused as such.
            self._inflater = None

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``data``, the next raw bytes of the body."""
        if self._inflater is None:
            yield data
            return
        while data:
            try:
                piece = self._inflater.decompress(data, PIECE)
            except zlib.error:
                if not self._raw_deflate_next:
                    raise UndecodableError from None
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self._raw_deflate_next = False
                continue
            self._raw_deflate_next = False
            yield piece
            data = self._inflater.unconsumed_tail

    def end(self) -> bytes:
        """What is left once the whole body went through ``decode`` (at most a piece)."""
        if self._inflater is None:
            return b""
        try:
            return self._inflater.flush()
        except zlib.error:
            raise UndecodableError from None


async def read_body(
    raw: AsyncIterator[bytes], status: int, headers: Mapping[str, str], call: api.Call, settings: api.Settings
) -> bytes:
    """
    The decoded body of an answer as ``raw`` yields it, refused past ``settings.max_response_bytes``.

    :param raw: the body as it arrives, still encoded.
    :param status: the answer's status code, and ``headers`` its headers (for the errors).
    :raises OctanistResponseError: when the body grows past the cap (nothing more is read), or does
        not decode as its ``Content-Encoding`` says.
    """
    pieces: list[bytes] = []
    size = 0
    try:
        decoder = BodyDecoder(headers.get("Content-Encoding", ""))
        async for data in raw:
            for piece in decoder.decode(data):
                size += len(piece)
                if size > settings.max_response_bytes:
                    raise api.answer_too_large(call, status, settings)
                pieces.append(piece)
        last = decoder.end()
    except UndecodableError:
        raise api.undecodable_answer(call, status, headers) from None
    if size + len(last) > settings.max_response_bytes:
        raise api.answer_too_large(call, status, settings)
    pieces.append(last)
    return b"".join(pieces)
