"""Unit specification of ``hooks/_transport/body``: bodies inflated a bounded piece at a time."""

from __future__ import annotations

import gzip
import zlib

import pytest

from airflow_provider_octanist.hooks._transport.body import PIECE, BodyDecoder, UndecodableError

BODY = b'{"success": true, "data": {}' + b" " * (4 * 1024 * 1024) + b"}"


def _decoded(encoding: str, wire: bytes, read: int = 65_536) -> list[bytes]:
    decoder = BodyDecoder(encoding)
    pieces = [
        piece for start in range(0, len(wire), read) for piece in decoder.decode(wire[start : start + read])
    ]
    return [*pieces, decoder.end()]


@pytest.mark.parametrize(
    ("encoding", "wire"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),  # zlib-wrapped, as the standard says
        ("deflate", zlib.compress(BODY)[2:-4]),  # raw, as some servers send it
        ("", BODY),
        ("identity", BODY),
    ],
)
def test_a_body_is_inflated_whole_in_pieces_no_larger_than_a_piece(encoding: str, wire: bytes) -> None:
    pieces = _decoded(encoding, wire)

    assert b"".join(pieces) == BODY
    if encoding not in ("", "identity"):
        assert max(len(piece) for piece in pieces) <= PIECE, "a compressed read never unfolds whole"


def test_an_encoding_not_asked_for_is_read_as_it_came() -> None:
    assert b"".join(_decoded("br", BODY)) == BODY


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_is_not_its_encoding_is_undecodable(encoding: str) -> None:
    with pytest.raises(UndecodableError):
        _decoded(encoding, b'{"success": true, "data": {}}')
