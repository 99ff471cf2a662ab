"""
A griffe extension for the API reference: reStructuredText in docstrings, rendered as Markdown.

The docstrings are reST-flavoured (``:param name:`` field lists, which mkdocstrings parses with
``docstring_style: sphinx``), but mkdocstrings renders their text as Markdown, so Sphinx roles
(``:class:`X```), ``.. code-block::`` directives and ``::`` literal blocks would reach the site as
raw text. Converting them here, when the docs are built, keeps the docstrings as they are:

- a role becomes the name in code, linked to its page of the reference where there is one (an
  optional cross-reference: a private or external name stays plain code, without a warning);
- ``.. code-block:: python`` and ``text::`` followed by an indented block become fenced code;
- a private base class (``_LeadListing``) gives way, in a class's "Bases", to its own public bases;
- a class decorated to append shared parameter docs at runtime (``with_write_back_parameters``)
  shows them on its page too, as ``help()`` does.

``docs/_hooks/check_rendered.py`` then fails the build if anything raw is left.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const|type):`(?P<tilde>~?)(?P<target>[^`]+)`"
)
DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S*)\s*$")
LITERAL = re.compile(r"^(?P<text>.*?)(?P<space>\s?)::\s*$")
APPENDED_DOCS = {
    "airflow_provider_octanist.transfers._write_back.with_write_back_parameters": (
        "airflow_provider_octanist.transfers._write_back.PARAMETERS"
    ),
}
"""A decorator that appends a module's text to a docstring at runtime -> the path of that text."""


class RstDocstrings(griffe.Extension):
    """Turn the reST of each docstring into Markdown, and show public base classes only."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring as it is loaded.

        :param obj: the object griffe just created.
        :param kwargs: the other arguments griffe passes (unused).
        """
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value, lambda target: _identifier(obj, target))

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Show each class's public bases: a private base gives way to its own bases.

        :param pkg: the package griffe just loaded, with every module.
        :param loader: the loader, whose collection resolves a base's path.
        :param kwargs: the other arguments griffe passes (unused).
        """
        for cls in _classes(pkg):
            cls.bases = _public_bases(cls.bases, loader)
            _append_decorated_docs(cls, loader)


def _append_decorated_docs(cls: griffe.Class, loader: griffe.GriffeLoader) -> None:
    """Append to ``cls``'s docstring what its decorators of ``APPENDED_DOCS`` append at runtime."""
    for decorator in cls.decorators:
        text_path = APPENDED_DOCS.get(decorator.callable_path)
        if text_path is None or cls.docstring is None:
            continue
        text = ast.literal_eval(str(loader.modules_collection[text_path].value))
        appended = to_markdown(textwrap.dedent(text).strip(), lambda target: _identifier(cls, target))
        cls.docstring.value = cls.docstring.value.rstrip() + "\n\n" + appended


def to_markdown(text: str, identify: Any) -> str:
    """Return ``text`` with its roles as references and its code blocks fenced.

    :param text: a docstring.
    :param identify: returns the full identifier of a role's target.
    """

    def reference(match: re.Match[str]) -> str:
        target = match["target"].strip().rstrip("()")
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target.lstrip(".")
        return f'<autoref identifier="{identify(target)}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(reference, _fence_blocks(text))


def _fence_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = DIRECTIVE.match(line)
        literal = LITERAL.match(line) if directive is None and not line.lstrip().startswith("..") else None
        if directive is None and literal is None:
            out.append(line)
            index += 1
            continue
        indent = len(line) - len(line.lstrip())
        block, end = _indented_block(lines, index + 1, indent)
        if not block:  # not a block after all (a line that merely ends with "::")
            out.append(line)
            index += 1
            continue
        if directive is not None:
            lang = directive["lang"]
        else:
            assert literal is not None
            lang = "python"
            text_part = literal["text"]
            if text_part.strip():
                # "Use it like this::" reads "Use it like this:"; a lone "::" disappears.
                out.append(text_part + ":" if not literal["space"] else text_part)
            out.append("")
        prefix = " " * indent
        out.append(f"{prefix}```{lang}")
        out.extend(f"{prefix}{code}" if code else "" for code in block)
        out.append(f"{prefix}```")
        index = end
    return "\n".join(out)


def _indented_block(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The lines after ``start`` indented deeper than ``indent`` (blank lines inside kept), dedented."""
    index = start
    while index < len(lines) and not lines[index].strip():
        index += 1
    body_start = index
    while index < len(lines) and (
        not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
    ):
        index += 1
    end = index
    while end > body_start and not lines[end - 1].strip():
        end -= 1
    if end == body_start:
        return [], start
    return textwrap.dedent("\n".join(lines[body_start:end])).splitlines(), end


def _identifier(obj: griffe.Object, target: str) -> str:
    """The full dotted path a role's target names, as seen from ``obj``."""
    if target.startswith("."):
        return f"{obj.package.path}{target}"
    head, _, rest = target.partition(".")
    scope = obj if isinstance(obj, (griffe.Class, griffe.Module)) else obj.parent
    while scope is not None:
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError):
            scope = scope.parent
            continue
        return f"{resolved}.{rest}" if rest else resolved
    return target


def _private(path: str) -> bool:
    return path.rsplit(".", 1)[-1].startswith("_")


def _classes(obj: griffe.Object) -> list[griffe.Class]:
    found: list[griffe.Class] = []
    for member in obj.members.values():
        if member.is_alias or not isinstance(member, (griffe.Module, griffe.Class)):
            continue
        if isinstance(member, griffe.Class):
            found.append(member)
        found.extend(_classes(member))
    return found


def _public_bases(bases: list[Any], loader: griffe.GriffeLoader) -> list[Any]:
    """``bases`` with each private one replaced by its own public bases (none repeated)."""
    public: list[Any] = []
    for base in bases:
        path = getattr(base, "canonical_path", str(base))
        if not _private(path):
            replacement = [base]
        else:
            try:
                parent = loader.modules_collection[path]
            except (KeyError, ValueError, griffe.AliasResolutionError):
                continue  # a private base outside the package: left out
            replacement = _public_bases(list(parent.bases), loader)
        public.extend(b for b in replacement if str(b) not in {str(p) for p in public})
    return public
