"""
The command line: ``python -m airflow_provider_octanist.testing`` serves until stopped (``__main__``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from .helpers import subprocess_env, wait_until

if TYPE_CHECKING:
    from pathlib import Path


def start_cli(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the CLI; return the process and its base URL once it is listening."""
    url_file = tmp_path / "url.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_octanist.testing", "--url-file", str(url_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while not url_file.exists():
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"CLI exited early with {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("CLI never wrote its --url-file within 30 s")
        time.sleep(0.02)
    return process, url_file.read_text().strip()


def cli_request(url: str, method: str, path: str, key: str) -> Any:
    request = urllib.request.Request(url + path, method=method, headers={"X-API-KEY": key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def stop_cli(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    try:
        stdout, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("CLI did not exit within 10 s of SIGINT")
    return process.returncode, stdout


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_cli_serves_until_sigint_and_exits_zero(tmp_path: Path) -> None:
    process, url = start_cli(tmp_path, "--api-key", "cli-key", "--leads", "3")
    try:
        assert re.match(r"^http://127\.0\.0\.1:\d+/api$", url)
        assert cli_request(url, "POST", "/check", "cli-key") == {"success": True}
        assert len(cli_request(url, "GET", "/leads", "cli-key")["data"]) == 3
    finally:
        returncode, stdout = stop_cli(process)
    assert returncode == 0
    assert url in stdout
    connection = json.loads(re.search(r"AIRFLOW_CONN_OCTANIST_DEFAULT='(.*)'", stdout).group(1))  # type: ignore[union-attr]
    assert connection == {"conn_type": "octanist", "host": url, "password": "cli-key"}


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGTERM")
def test_cli_prints_a_random_key_and_wins_the_lead_after_the_delay(tmp_path: Path) -> None:
    process, url = start_cli(tmp_path, "--lead-id", "lead_demo", "--win-after", "0.2")
    try:
        assert process.stdout is not None
        key = ""
        while not key:
            line = process.stdout.readline()
            assert line, "CLI output ended before it printed the API key"
            if line.startswith("API key: "):
                key = line.removeprefix("API key: ").strip()
        wait_until(
            lambda: cli_request(url, "GET", "/leads/lead_demo", key)["data"]["status"] == "won",
            timeout=10,
            message="--win-after never turned lead_demo won",
        )
        assert cli_request(url, "GET", "/leads/lead_demo", key)["data"]["value"] == 1200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_cli_win_after_needs_a_lead_id(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_octanist.testing", "--win-after", "1"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--lead-id" in result.stderr
