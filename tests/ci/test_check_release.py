"""The release check (``.ci/check_release.py``): what a push needs, and what a release tag needs more."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "check_release.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_release", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_release = load_script()

HEAD = "# Changelog\n\nIntro.\n\n"
RELEASED = "## 1.2.0 - 2026-12-01\n\n### Added\n- A feature.\n\n## 1.1.0\n\n- Older.\n"
PENDING = "## Unreleased\n\n### Fixed\n- A fix not yet released.\n\n"


def test_a_push_passes_with_entries_under_unreleased() -> None:
    assert check_release.problems("1.2.0", HEAD + PENDING + RELEASED, tag=None) == []


def test_a_tag_passes_with_a_dated_section_and_an_empty_unreleased_heading() -> None:
    changelog = HEAD + "## Unreleased\n\n" + RELEASED
    assert check_release.problems("1.2.0", changelog, tag="v1.2.0") == []


def test_a_tag_passes_without_an_unreleased_heading() -> None:
    assert check_release.problems("1.2.0", HEAD + RELEASED, tag="refs/tags/v1.2.0") == []


def test_a_tag_fails_while_unreleased_holds_entries_and_names_the_first() -> None:
    found = check_release.problems("1.2.0", HEAD + PENDING + RELEASED, tag="v1.2.0")
    assert len(found) == 1
    assert "'## Unreleased' still holds 1 change(s)" in found[0]
    assert "A fix not yet released." in found[0]
    assert "move them under '## 1.2.0'" in found[0]


def test_a_tag_fails_when_the_version_section_has_no_date() -> None:
    changelog = HEAD + "## 1.2.0\n\n- A feature.\n"
    assert check_release.problems("1.2.0", changelog, tag=None) == []
    (problem,) = check_release.problems("1.2.0", changelog, tag="v1.2.0")
    assert "has no release date: write '## 1.2.0 - YYYY-MM-DD'" in problem


def test_a_date_that_is_not_a_calendar_date_does_not_count() -> None:
    changelog = HEAD + "## 1.2.0 - 2026-13-45\n\n- A feature.\n"
    (problem,) = check_release.problems("1.2.0", changelog, tag="v1.2.0")
    assert "no release date" in problem


def test_a_version_without_a_section_fails_with_or_without_a_tag() -> None:
    changelog = HEAD + PENDING + RELEASED
    assert check_release.problems("1.3.0", changelog, tag=None) == [
        "CHANGELOG.md has no '## 1.3.0' entry: describe the release there"
    ]


def test_a_tag_that_names_another_version_fails() -> None:
    found = check_release.problems("1.2.0", HEAD + RELEASED, tag="v1.1.0")
    assert found == ["tag 'v1.1.0' does not name the version: expected 'v1.2.0'"]


def test_the_repository_itself_passes_the_check_of_a_push() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
