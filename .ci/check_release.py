"""Check that the source is ready to be released: the version has a CHANGELOG entry and matches the tag.

Usage: ``python .ci/check_release.py [--tag v1.2.3]`` from anywhere in the repository (``make
release-check [TAG=v1.2.3]``; the release workflow passes the pushed tag). Exits non-zero with one line
per problem. Standard library only: it runs before anything is installed.

Without a tag (CI on every push), entries under ``## Unreleased`` are normal: they are the changes
since the last release. With a tag, the version needs a dated ``## <version> - YYYY-MM-DD`` section
and ``## Unreleased`` must hold no entries, so a tag never ships changes its section does not list.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "airflow_provider_octanist" / "__init__.py"
CHANGELOG = ROOT / "CHANGELOG.md"
# PEP 440 public versions as this project writes them: 1.2.3, 1.2.3rc1, 1.2.3.post1, 1.2.3.dev1.
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
UNRELEASED = "Unreleased"


def source_version(text: str) -> str | None:
    """Return the ``__version__`` that ``airflow_provider_octanist/__init__.py`` declares, if any.

    :param text: the module's source.
    """
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    return match.group(1) if match else None


def _section(changelog: str, name: str) -> tuple[str, str] | None:
    """Return the heading line and the body of the ``## <name>`` section, or None if there is none."""
    heading = re.compile(rf"^## \[?{re.escape(name)}\]?(?:\s.*)?$", re.MULTILINE)
    match = heading.search(changelog)
    if match is None:
        return None
    following = re.search(r"^## ", changelog[match.end() :], re.MULTILINE)
    end = match.end() + following.start() if following else len(changelog)
    return match.group(0), changelog[match.end() : end].strip()


def changelog_entry(changelog: str, version: str) -> str | None:
    """Return the body of the ``## <version>`` section of the changelog, or None if there is none.

    The heading may carry a date after the version (``## 1.2.0 - 2026-12-01``).

    :param changelog: the text of CHANGELOG.md.
    :param version: the version to look for.
    """
    section = _section(changelog, version)
    return section[1] if section else None


def release_date(changelog: str, version: str) -> str | None:
    """Return the date of the ``## <version> - YYYY-MM-DD`` heading, or None when it carries none.

    :param changelog: the text of CHANGELOG.md.
    :param version: the version whose heading to read.
    """
    section = _section(changelog, version)
    if section is None:
        return None
    match = re.search(r"\s-\s(\d{4}-\d{2}-\d{2})\s*$", section[0])
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1)).isoformat()
    except ValueError:
        return None


def unreleased_entries(changelog: str) -> list[str]:
    """Return the entries (list items) under ``## Unreleased``; none when the section is absent.

    :param changelog: the text of CHANGELOG.md.
    """
    section = _section(changelog, UNRELEASED)
    if section is None:
        return []
    return [line.strip() for line in section[1].splitlines() if re.match(r"^\s*[-*+] ", line)]


def problems(version: str | None, changelog: str, tag: str | None) -> list[str]:
    """Return what stands in the way of releasing ``version`` (an empty list: nothing).

    :param version: the source's ``__version__`` (None when the line is missing).
    :param changelog: the text of CHANGELOG.md.
    :param tag: the release tag (``v1.2.3`` or ``refs/tags/v1.2.3``), or None when not releasing a tag.
    """
    if version is None:
        return [f"{VERSION_FILE.relative_to(ROOT)} has no line '__version__ = \"X.Y.Z\"'"]
    found: list[str] = []
    if not VERSION_RE.match(version):
        found.append(f"version {version!r} is not a release version such as 1.2.3 or 1.2.3rc1")
    entry = changelog_entry(changelog, version)
    if entry is None:
        found.append(f"CHANGELOG.md has no '## {version}' entry: describe the release there")
    elif not entry:
        found.append(f"CHANGELOG.md's '## {version}' entry is empty")
    if tag is not None:
        name = tag.removeprefix("refs/tags/")
        if name != f"v{version}":
            found.append(f"tag {name!r} does not name the version: expected 'v{version}'")
        if entry is not None and release_date(changelog, version) is None:
            found.append(
                f"CHANGELOG.md's '## {version}' heading has no release date: "
                f"write '## {version} - YYYY-MM-DD'"
            )
        pending = unreleased_entries(changelog)
        if pending:
            found.append(
                f"CHANGELOG.md's '## {UNRELEASED}' still holds {len(pending)} change(s), the first "
                f"{pending[0][:80]!r}: move them under '## {version}' before tagging"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    """Check the repository; print each problem and return 1 if there is any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="the release tag, e.g. v1.2.3 or refs/tags/v1.2.3")
    args = parser.parse_args(argv)
    version = source_version(VERSION_FILE.read_text(encoding="utf-8"))
    found = problems(version, CHANGELOG.read_text(encoding="utf-8"), args.tag)
    for problem in found:
        print(f"release check: {problem}")
    if found:
        return 1
    tagged = f" and tag {args.tag}" if args.tag else ""
    print(f"release check: version {version}{tagged} ready, CHANGELOG.md has its entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
