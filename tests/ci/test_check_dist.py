"""The README's links as the package index renders them (``.ci/check_dist.py``, run by ``make package``)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "https://github.com/octanist/airflow-provider-octanist"
DOCS = "https://airflow-provider-octanist.readthedocs.io/en/latest/"
URLS = {"Source": SOURCE, "Documentation": DOCS}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / ".ci" / "check_dist.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_dist = load_script()


def problems(readme: str) -> list[str]:
    found: list[str] = check_dist.check_readme_links(readme, URLS)
    return found


def pyproject_urls() -> dict[str, str]:
    """``[project.urls]`` of pyproject.toml (read by hand: Python 3.10 has no tomllib)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.urls]", 1)[1].split("\n[", 1)[0]
    return {key.strip('"'): value for key, value in re.findall(r'^("[^"]+"|\w+) = "([^"]+)"$', section, re.M)}


def test_a_relative_inline_link_is_refused_with_what_to_link_instead() -> None:
    (problem,) = problems(f"See [the hook](docs/hook.md) and [the site]({DOCS}).")
    assert "'docs/hook.md' is not absolute" in problem
    assert DOCS in problem
    assert SOURCE in problem


def test_a_relative_reference_definition_is_refused() -> None:
    (problem,) = problems("See [LICENSE][license].\n\n[license]: LICENSE\n")
    assert "'LICENSE' is not absolute" in problem


def test_a_relative_html_link_and_an_anchor_alone_are_refused() -> None:
    found = problems('<img src="docs/form.png"> and [below](#install)')
    assert len(found) == 2


def test_absolute_links_to_the_docs_and_the_repository_pass() -> None:
    readme = (
        f"[Guide]({DOCS}hook/) · [LICENSE][l] · <{DOCS}> · [mail](mailto:security@example.com)\n\n"
        f"[l]: {SOURCE}/blob/main/LICENSE\n"
    )
    assert problems(readme) == []


def test_links_inside_code_are_not_links() -> None:
    readme = f"[Docs]({DOCS})\n\n```python\nx = d[0](y)\n```\nand `[a](b)` inline.\n"
    assert problems(readme) == []


def test_another_spelling_of_the_repository_is_refused() -> None:
    (problem,) = problems(f"[Docs]({DOCS}) [fork](https://github.com/someone/airflow-provider-octanist)")
    assert "names the repository otherwise than the Source URL" in problem


def test_a_readme_without_links_cannot_pass_unseen() -> None:
    assert problems("No links here.") == ["the README has no links: the link check would see nothing"]


def test_the_repository_readme_has_only_absolute_links_under_the_projects_urls() -> None:
    urls = pyproject_urls()
    assert urls["Source"] == SOURCE
    assert urls["Documentation"] == DOCS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert check_dist.check_readme_links(readme, urls) == []
    assert len(check_dist.readme_links(readme)) > 20
