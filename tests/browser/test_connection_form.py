"""The Octanist connection form as a person sees it: a real Airflow API server, a real Chromium.

Starts ``airflow api-server`` on 127.0.0.1 (simple auth manager, everyone an admin, so no login),
opens Admin > Connections > Add Connection in headless Chromium driven by Playwright, chooses the
Octanist type and reads the form. Needs Playwright for Python and a Chromium binary (Debian's
``chromium``; Playwright never downloads a browser here): ``make browser`` installs the former and
CI installs both. Without them these tests skip, unless ``OCTANIST_REQUIRE_BROWSER`` is set.
``OCTANIST_SCREENSHOT_DIR=<folder>`` saves the screenshots there as well (``make browser`` refreshes
``docs/connection-form.png`` and ``docs/connection-form-extras.png`` that way).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 120.0
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
CONN_ID = "octanist_default"
API_KEY = "browser-test-api-key"


def _airflow_major() -> int:
    from airflow import __version__

    return int(__version__.split(".")[0])


def _chromium() -> str | None:
    path = os.environ.get("OCTANIST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.access(path, os.X_OK) else None


def _missing_prerequisite() -> str | None:
    if _airflow_major() < 3:
        return None  # handled separately: not a missing install but a feature the version lacks
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (`make browser` installs it)"
    if _chromium() is None:
        return "no Chromium binary (install Debian's `chromium`, or set OCTANIST_CHROMIUM)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _prerequisites() -> None:
    if _airflow_major() < 3:
        pytest.skip("Airflow 2 has no API server with the React UI; its form is the FAB webserver's")
    missing = _missing_prerequisite()
    if missing and os.environ.get("OCTANIST_REQUIRE_BROWSER"):
        pytest.fail(f"OCTANIST_REQUIRE_BROWSER is set but {missing}")
    if missing:
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class ApiServer:
    """A running ``airflow api-server`` and the environment it shares with ``airflow`` CLI calls."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url = url
        self.env = env

    def airflow(self, *args: str) -> str:
        """Run an ``airflow`` CLI command against the server's database and return its stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real Airflow API server on 127.0.0.1 with a throw-away home and database."""
    home = tmp_path_factory.mktemp("airflow-home")
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
    }
    env.pop("AIRFLOW_CONN_OCTANIST_DEFAULT", None)
    server = ApiServer(f"http://127.0.0.1:{port}", env)
    server.airflow("db", "migrate")

    log = home / "api-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its uvicorn workers share the group, so one signal stops them all
        )
    try:
        _wait_until_healthy(server.url, process, log)
        yield server
    finally:
        _stop(process)


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"airflow api-server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)  # poll interval while uvicorn boots; the deadline bounds the wait
    pytest.fail(f"airflow api-server did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    """A page in headless Debian Chromium (never a browser downloaded by Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1500})
            context.set_default_timeout(30_000)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def octanist_form(api_server: ApiServer, page: Page) -> Locator:
    """The Add Connection dialog with the Octanist type chosen."""
    page.goto(f"{api_server.url}/connections", wait_until="networkidle")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.get_by_role("combobox", name="Connection Type").fill("Octanist")
    page.get_by_role("option", name="Octanist", exact=True).click()
    dialog.get_by_label("API Key").wait_for()
    return dialog


def _section(dialog: Locator, title: str) -> Locator:
    """Open one section of the form (the UI shows one at a time) and return its content."""
    trigger = dialog.get_by_role("button", name=title, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    content = dialog.page.locator(f'[id="{trigger.get_attribute("aria-controls")}"]')
    content.wait_for(state="visible")
    return content


def _labels(section: Locator) -> list[str]:
    return [" ".join(text.replace("*", "").split()) for text in section.locator("label").all_inner_texts()]


def test_api_key_is_a_password_field(octanist_form: Locator) -> None:
    api_key = _section(octanist_form, "Standard Fields").get_by_label("API Key")
    assert api_key.get_attribute("type") == "password"
    assert api_key.get_attribute("placeholder") == "Octanist API key (Settings > General > API Keys)"


def test_base_url_shows_the_default_as_placeholder(octanist_form: Locator) -> None:
    base_url = _section(octanist_form, "Standard Fields").get_by_label("Base URL")
    assert base_url.get_attribute("type") == "text"
    assert base_url.get_attribute("placeholder") == "https://octanist.com/api"


def test_login_schema_and_port_are_hidden(octanist_form: Locator) -> None:
    assert _labels(_section(octanist_form, "Standard Fields")) == ["Description", "Base URL", "API Key"]


def test_every_documented_extra_is_a_form_field(octanist_form: Locator) -> None:
    extras = _section(octanist_form, "Extra Fields")
    assert [label for label in _labels(extras) if label] == [
        "Read timeout (seconds)",
        "Connect timeout (seconds)",
        "Max retries",
        "Retry backoff (seconds)",
        "Max answer size (bytes)",
        "Verify TLS",
        "Allow plain http:// to a non-loopback host",
    ]
    expected_numbers = {
        "Read timeout (seconds)": "30",
        "Connect timeout (seconds)": "10",
        "Max retries": "3",
        "Max answer size (bytes)": "67108864",
    }
    for label, value in expected_numbers.items():
        assert extras.get_by_role("spinbutton", name=label).input_value() == value, label
    insecure = extras.get_by_role("checkbox", name="Allow plain http:// to a non-loopback host")
    assert not insecure.is_checked()
    assert extras.get_by_text(
        "Retries for 429, 5xx, connection errors and timeouts (never for 4xx)."
    ).is_visible()


def test_screenshots_of_the_form(octanist_form: Locator, tmp_path: Path) -> None:
    folders = [tmp_path]
    if os.environ.get("OCTANIST_SCREENSHOT_DIR"):
        folders.append(Path(os.environ["OCTANIST_SCREENSHOT_DIR"]))
    for section, name in (
        ("Standard Fields", "connection-form.png"),
        ("Extra Fields", "connection-form-extras.png"),
    ):
        _section(octanist_form, section)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            octanist_form.screenshot(path=str(folder / name), animations="disabled")
            assert (folder / name).read_bytes().startswith(b"\x89PNG"), folder / name


def test_saving_the_form_stores_an_octanist_connection(
    api_server: ApiServer, octanist_form: Locator, tmp_path: Path
) -> None:
    standard = _section(octanist_form, "Standard Fields")
    standard.get_by_label("API Key").fill(API_KEY)
    standard.get_by_label("Base URL").fill("https://octanist.example/api")
    _section(octanist_form, "Extra Fields").get_by_role("spinbutton", name="Max retries").fill("5")
    octanist_form.get_by_role("button", name="Save").click()
    octanist_form.wait_for(state="hidden")

    exported = tmp_path / "connections.json"
    api_server.airflow("connections", "export", str(exported), "--file-format", "json")
    conn = json.loads(exported.read_text())[CONN_ID]
    assert conn["conn_type"] == "octanist"
    assert conn["host"] == "https://octanist.example/api"
    assert conn["password"] == API_KEY
    # Typed JSON values, as the hook reads them: numbers stay numbers, the switch a boolean.
    assert json.loads(conn["extra"]) == {
        "timeout": 30,
        "connect_timeout": 10,
        "max_retries": 5,
        "retry_backoff": 1,
        "max_response_bytes": 67108864,
        "verify": "true",
        "allow_insecure_http": False,
    }
