"""Check the built distributions: what the wheel holds, the version, the classifiers, the README's links.

Usage: ``python .ci/check_dist.py DIST_DIR`` after ``python -m build --outdir DIST_DIR``.
Exits non-zero with one line per problem.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from email.message import Message

PACKAGE = "airflow_provider_octanist"
DISTRIBUTION = "airflow-provider-octanist"
# Modules users import by path (see the README); the wheel must carry every one of them.
REQUIRED_FILES = [
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/exceptions.py",
    f"{PACKAGE}/statuses.py",
    f"{PACKAGE}/hooks/octanist.py",
    f"{PACKAGE}/operators/octanist.py",
    f"{PACKAGE}/sensors/octanist.py",
    f"{PACKAGE}/triggers/octanist.py",
    f"{PACKAGE}/testing/__init__.py",
    f"{PACKAGE}/testing/server.py",
]
REQUIRED_KEYWORDS = {"airflow-provider", "octanist"}
# Development tools are PEP 735 dependency groups, never extras: the published metadata lists only
# what users install. Neither these extras nor these tools may appear in the wheel's METADATA.
DEVELOPMENT_EXTRAS = {"test", "dev", "lint", "package", "docs", "browser", "bench", "s3", "postgres"}
DEVELOPMENT_TOOLS = {
    "pytest",
    "pytest-timeout",
    "ruff",
    "mypy",
    "types-requests",
    "build",
    "twine",
    "trove-classifiers",
    "mkdocs",
    "mkdocstrings",
    "mkdocstrings-python",
    "pymdown-extensions",
    "playwright",
    "apache-airflow-providers-http",
    "moto",
    "flask",
    "flask-cors",
}
DOCS_URL = "https://airflow-provider-octanist.readthedocs.io/en/latest/"
# The package index renders the README (the wheel's METADATA description) with no idea where the
# repository is: a relative link there is a broken link. Each of these must be in [project.urls].
REQUIRED_URLS = ("Homepage", "Documentation", "Source", "Issues", "Changelog")
# Markdown links [text](target), reference definitions "[name]: target", <autolinks>, HTML attributes.
LINK_TARGETS = (
    re.compile(r"\]\(\s*<?([^)\s>]+)"),
    re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE),
    re.compile(r"<((?:[a-zA-Z][a-zA-Z0-9+.-]*:)[^>\s]*)>"),
    re.compile(r"\b(?:href|src)=[\"']([^\"']+)[\"']"),
)
CODE = re.compile(r"^(```|~~~).*?^\1[^\n]*$|`[^`\n]+`", re.MULTILINE | re.DOTALL)


def _source_version(root: Path) -> str:
    text = (root / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{PACKAGE}/__init__.py has no __version__ line")
    return match.group(1)


def check_wheel(wheel: Path, version: str) -> list[str]:
    """Return the problems of one wheel.

    :param wheel: path of the ``.whl`` file.
    :param version: the version the source declares.
    """
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        entry_points_name = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        metadata = Parser().parsestr(zf.read(metadata_name).decode()) if metadata_name else None
        entry_points = zf.read(entry_points_name).decode() if entry_points_name else ""
    problems += [f"wheel lacks {name}" for name in REQUIRED_FILES if name not in names]
    strays = [n for n in names if not n.startswith((f"{PACKAGE}/", f"{PACKAGE}-{version}.dist-info/"))]
    problems += [f"wheel holds a file outside the package: {name}" for name in strays]
    problems += [f"wheel holds a test file: {n}" for n in names if n.startswith("tests/") or "/tests/" in n]
    problems += [f"wheel holds a compiled file: {n}" for n in names if n.endswith((".pyc", ".pyo"))]
    # Like first-party providers, the example DAGs stay in the repository and the sdist, not the wheel.
    problems += [f"wheel holds an example DAG: {n}" for n in names if "example_dags" in n]
    if metadata is None:
        return [*problems, "wheel has no METADATA"]
    if metadata["Version"] != version:
        problems.append(f"wheel version {metadata['Version']} differs from __version__ {version}")
    keywords = {k.strip() for k in re.split(r"[,\s]+", metadata.get("Keywords", "")) if k.strip()}
    problems += [f"keyword {k!r} missing" for k in sorted(REQUIRED_KEYWORDS - keywords)]
    problems += check_classifiers(metadata.get_all("Classifier") or [])
    problems += check_requirements(metadata)
    problems += check_readme_links(metadata.get_payload() or "", project_urls(metadata))
    if "apache_airflow_provider" not in entry_points or f"{PACKAGE}:get_provider_info" not in entry_points:
        problems.append("wheel lacks the apache_airflow_provider entry point")
    return problems


def check_requirements(metadata: Message) -> list[str]:
    """Return the development extras and tools that the wheel's METADATA would publish.

    :param metadata: the wheel's parsed METADATA.
    """
    extras = {e.strip().lower() for e in metadata.get_all("Provides-Extra") or []}
    problems = [f"METADATA offers the development extra {e!r}" for e in sorted(extras & DEVELOPMENT_EXTRAS)]
    for requirement in metadata.get_all("Requires-Dist") or []:
        name = re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name in DEVELOPMENT_TOOLS:
            problems.append(f"METADATA requires the development tool {requirement!r}")
    urls = project_urls(metadata)
    if urls.get("Documentation") != DOCS_URL:
        problems.append(f"Documentation URL is {urls.get('Documentation')!r}, not {DOCS_URL!r}")
    problems += [f"[project.urls] lacks {name!r}" for name in REQUIRED_URLS if name not in urls]
    source = urls.get("Source")
    if source and not urls.get("Issues", source).startswith(source):
        problems.append(f"Issues URL {urls['Issues']!r} is not under the Source URL {source!r}")
    return problems


def project_urls(metadata: Message) -> dict[str, str]:
    """Return the ``Project-URL`` entries of METADATA by label.

    :param metadata: the wheel's parsed METADATA.
    """
    return dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [] if ", " in u)


def readme_links(readme: str) -> list[str]:
    """Return every link target of a Markdown README, outside code.

    :param readme: the README's text.
    """
    text = CODE.sub(" ", readme)
    return [match.group(1) for pattern in LINK_TARGETS for match in pattern.finditer(text)]


def check_readme_links(readme: str, urls: dict[str, str]) -> list[str]:
    """Return the README's links that would break on the package index, or stray from the project's home.

    Every link must be absolute (``https://``, or ``mailto:``); a link to the repository must start
    with the ``Source`` URL, so the repository is named one way, from one place.

    :param readme: the README's text (the wheel's METADATA description).
    :param urls: the ``[project.urls]`` entries by label.
    """
    if not readme.strip():
        return ["METADATA has no description: the package index would show no README"]
    links = readme_links(readme)
    if not links:
        return ["the README has no links: the link check would see nothing"]
    problems = [
        f"README link {link!r} is not absolute: the package index cannot follow it; link to the docs "
        f"site ({DOCS_URL}) or the repository ({urls.get('Source', 'the Source URL')})"
        for link in links
        if not re.match(r"^(https://|mailto:)", link)
    ]
    source = urls.get("Source", "").rstrip("/")
    name = source.split("/")[4:5]
    # Another spelling of the repository (another owner, another case) is a second home: refuse it.
    problems += [
        f"README link {link!r} names the repository otherwise than the Source URL {source!r}"
        for link in links
        if name
        and link.startswith("https://github.com/")
        and [part.lower() for part in link.split("/")[4:5]] == [name[0].lower()]
        and not (link == source or link.startswith((source + "/", source + "#")))
    ]
    return problems


def check_classifiers(classifiers: list[str]) -> list[str]:
    """Return the classifiers that PyPI would reject (unknown or deprecated trove classifiers).

    :param classifiers: the wheel's ``Classifier`` lines.
    """
    from trove_classifiers import classifiers as known
    from trove_classifiers import deprecated_classifiers

    problems = [f"unknown trove classifier: {c!r}" for c in classifiers if c not in known]
    problems += [f"deprecated trove classifier: {c!r}" for c in classifiers if c in deprecated_classifiers]
    if "Framework :: Apache Airflow :: Provider" not in classifiers:
        problems.append("classifier 'Framework :: Apache Airflow :: Provider' missing")
    return problems


def check_sdist(sdist: Path, version: str) -> list[str]:
    """Return the problems of the source distribution.

    :param sdist: path of the ``.tar.gz`` file.
    :param version: the version the source declares.
    """
    prefix = f"{PACKAGE}-{version}/"
    with tarfile.open(sdist) as tf:
        names = tf.getnames()
    wanted = [
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/py.typed",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "SECURITY.md",
        "example_dags/example_octanist_lead_won.py",
    ]
    return [f"sdist lacks {name}" for name in wanted if prefix + name not in names]


def main(argv: list[str]) -> int:
    """Check the wheel and the sdist in ``argv[1]``; print each problem, return 1 if any."""
    if len(argv) != 2:
        print(__doc__)
        return 2
    dist = Path(argv[1])
    version = _source_version(Path(__file__).resolve().parent.parent)
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {[p.name for p in dist.iterdir()]}")
        return 1
    if wheels[0].name != f"{PACKAGE}-{version}-py3-none-any.whl":
        print(f"unexpected wheel name {wheels[0].name}")
        return 1
    problems = check_wheel(wheels[0], version) + check_sdist(sdists[0], version)
    for problem in problems:
        print(f"dist check: {problem}")
    if problems:
        return 1
    print(f"dist check: {wheels[0].name} and {sdists[0].name} are complete (version {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
