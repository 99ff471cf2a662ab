"""
How many values a JSON answer holds, counted before it is parsed, so that parsing stays bounded.

The size cap bounds an answer's bytes, not what ``json.loads`` builds from them: three bytes
(``{},``) become an object of about 100 bytes, so 32 MiB of them grow a process by a gigabyte.
In an object or array every item but the first follows a ``,``, and every object or array opens
with ``{`` or ``[``: so the ``,``, ``[`` and ``{`` outside of strings, plus one, bound the values
an answer decodes into (objects, arrays and their items; keys aside, which the decoder shares).
"""

from __future__ import annotations

MAX_JSON_VALUES = 1_000_000
"""
Values (objects, arrays and their items) an answer may hold; it is refused unparsed beyond.

The largest answer of the API is a page of 500 ad-spend rows or 100 leads: tens of thousands of
values. A million of the costliest kind (one-key objects) take about 100 MiB once decoded.
"""

_BUT_STRUCTURE = bytes(set(range(256)) - set(b",[{"))
"""Every byte but ``,``, ``[`` and ``{``: deleted (``bytes.translate``, one pass in C) to count those."""

_BUT_STRUCTURE_AND_QUOTES = bytes(set(range(256)) - set(b',[{"'))

_WINDOW = 1 << 18
"""Bytes split at their quotes at a time: the pieces of one window are all that is held at once."""


def too_many_values(content: bytes, limit: int = MAX_JSON_VALUES) -> bool:
    """
    Whether ``content`` (a JSON text) holds more than ``limit`` values.

    An answer shorter than ``limit`` bytes cannot, and costs nothing (a page of 100 leads is about
    100 KB); a longer one costs a pass of C code over it (about 1.5 ms per MB, where parsing it
    takes some 50 ms). Only one whose ``,``, ``[`` and ``{`` number ``limit`` or more, strings included,
    is counted again without its strings, in windows, so a body of millions of tiny strings costs
    no more memory than one window's pieces.
    """
    if len(content) < limit:
        return False
    if len(content.translate(None, _BUT_STRUCTURE)) < limit:
        return False
    # Escaped backslashes first, then escaped quotes: the quotes left open and close strings.
    bare = content.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _BUT_STRUCTURE_AND_QUOTES)
    count, in_string = 0, False
    for start in range(0, len(bare), _WINDOW):
        pieces = bare[start : start + _WINDOW].split(b'"')
        # Pieces alternate between outside and inside a string, from where the last window ended.
        count += sum(map(len, pieces[in_string::2]))
        if count >= limit:
            return True
        in_string ^= len(pieces) % 2 == 0  # an odd number of quotes: the string state flips
    return False
