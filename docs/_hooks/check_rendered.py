"""
A MkDocs hook: fail the build when a page shows raw reStructuredText.

``docs/_hooks/rst_docstrings.py`` converts the docstrings' roles and code blocks; anything it
missed (or a Markdown page written in reST) would reach the site as text such as ``:class:`` or
``.. code-block::``. Each finding is logged as a warning, which ``mkdocs build --strict`` (``make
docs``) turns into a failed build. Text inside code (``<code>``, ``<pre>``) is not looked at: a page
may show these markers as examples.
"""

from __future__ import annotations

import re
from typing import Any

from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger(__name__)

RAW = re.compile(
    r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|param|type|rtype|returns?|raises?)[: ]"
    r"|\.\. code-block::"
)
CODE = re.compile(r"<(pre|code)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
TAG = re.compile(r"<[^>]+>")


def raw_markers(html: str) -> list[str]:
    """Return the raw reST markers in the text of ``html`` (outside code), with a little context.

    :param html: a rendered page.
    """
    text = TAG.sub(" ", CODE.sub(" ", html))
    return [text[max(0, m.start() - 30) : m.end() + 30].strip() for m in RAW.finditer(text)]


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    """Warn about each raw marker on ``page``.

    :param html: the page's rendered content.
    :param page: the page.
    :param kwargs: the other arguments MkDocs passes (unused).
    """
    for found in raw_markers(html):
        log.warning("%s shows raw reStructuredText: ...%s...", page.file.src_uri, " ".join(found.split()))
    return html
