"""
OctanistLeadStatusSensor under real Airflow: one ``airflow dags test`` of the scenarios DAG in ``dags/``.

The fake server runs in this process; Airflow runs in a child process with a throw-away home and
the connection in ``AIRFLOW_CONN_OCTANIST_DEFAULT``. Leads are flipped only after the sensor has
seen them unfinished, so each success proves a real wait (poke, reschedule or deferred). Each test
then reads one outcome of the shared run from Airflow's own metadata database and output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dags_test_runner import AirflowHome, DagsTestRun, FlipWhenSeen, OutageWhenSeen

from airflow_provider_octanist.testing import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow

DAG_FILE = Path(__file__).parent / "dags" / "octanist_sensor_scenarios.py"
DAG_ID = "octanist_sensor_scenarios"
# Long and distinctive, so that any leak of it (logs, output, database) is found by a plain search.
API_KEY = "oct-test-key-" + "7Qx9Lm2Vw8" * 6


class Scenario:
    """The shared run and everything the tests look at."""

    def __init__(
        self, server: FakeOctanistServer, home: AirflowHome, run: DagsTestRun, flips: dict[str, Any]
    ):
        self.server = server
        self.home = home
        self.run = run
        self.flips = flips

    def gets(self, lead_id: str) -> int:
        return self.server.request_count("GET", f"/api/leads/{lead_id}")

    def assert_task(self, task_id: str, state: str) -> None:
        task = self.run.tasks.get(task_id)
        assert task is not None, self.run.describe()
        assert task.state == state, self.run.describe()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with FakeOctanistServer(api_key=API_KEY) as server, FakeOctanistServer(api_key=API_KEY) as outage:
        for lead_id in ("lead_poke_flip", "lead_reschedule_flip", "lead_defer_flip", "lead_defer_lost"):
            server.add_lead(id=lead_id)
        server.add_lead(id="lead_lost", status="lost", lossReason="Chose a competitor")
        outage.add_lead(id="lead_outage")
        flips = {
            "poke": FlipWhenSeen(server, "lead_poke_flip", "won", value=1200),
            "reschedule": FlipWhenSeen(server, "lead_reschedule_flip", "qualified", value=300),
            "deferred": FlipWhenSeen(server, "lead_defer_flip", "won", value=900),
            "deferred_lost": FlipWhenSeen(server, "lead_defer_lost", "lost", loss_reason="Budget cut"),
            "outage": OutageWhenSeen(outage, "lead_outage", after_requests=1),
        }
        try:
            home = AirflowHome(tmp_path_factory.mktemp("airflow-sensor"), [DAG_FILE])

            def conn(url: str, key: str, **extra: Any) -> str:
                return json.dumps(
                    {
                        "conn_type": "octanist",
                        "host": url,
                        "password": key,
                        "extra": {"retry_backoff": 0.01, **extra},
                    }
                )

            env = {
                "AIRFLOW_CONN_OCTANIST_DEFAULT": conn(server.url, API_KEY),
                "AIRFLOW_CONN_OCTANIST_REJECTED": conn(server.url, "a-key-octanist-rejects"),
                "AIRFLOW_CONN_OCTANIST_OUTAGE": conn(outage.url, API_KEY, max_retries=0),
            }
            run = home.dags_test(DAG_ID, env=env)
        finally:
            for flip in flips.values():
                flip.stop()
        yield Scenario(server, home, run, flips)


def test_poke_mode_returns_the_lead_after_it_turns_won(scenario: Scenario) -> None:
    scenario.assert_task("poke_until_won", "success")
    assert scenario.flips["poke"].flipped.is_set()
    assert scenario.gets("lead_poke_flip") >= 3
    lead = scenario.run.xcom("poke_until_won")
    assert lead["id"] == "lead_poke_flip"
    assert lead["status"] == "won"
    assert lead["value"] == 1200


def test_reschedule_mode_returns_the_lead_after_it_reaches_a_target(scenario: Scenario) -> None:
    scenario.assert_task("reschedule_until_qualified", "success")
    assert scenario.flips["reschedule"].flipped.is_set()
    assert scenario.run.xcom("reschedule_until_qualified")["status"] == "qualified"


def test_deferrable_mode_defers_then_returns_the_lead_after_it_turns_won(scenario: Scenario) -> None:
    scenario.assert_task("deferred_until_won", "success")
    assert scenario.flips["deferred"].flipped.is_set()
    # The templated lead id was rendered, the sensor checked once and handed over to the trigger.
    assert "Deferring: the triggerer checks lead lead_defer_flip" in scenario.run.output
    # The sensor's check and the trigger's first read; the win came through the shared change feed,
    # or, when it landed between that read and the trigger's look for the lead in the list, through
    # the one read again that such a look makes.
    assert scenario.gets("lead_defer_flip") in (2, 3)
    assert scenario.server.request_count("GET", "/api/leads") >= 1
    lead = scenario.run.xcom("deferred_until_won")
    assert lead["status"] == "won"
    assert lead["value"] == 900


def test_a_lost_lead_fails_at_once_without_retries(scenario: Scenario) -> None:
    scenario.assert_task("already_lost", "failed")
    task = scenario.run.tasks["already_lost"]
    assert task.max_tries == 3
    assert task.try_number == 1, scenario.run.describe()
    assert "Lead lead_lost is 'lost' (lossReason: 'Chose a competitor')" in scenario.run.output


def test_a_lead_lost_while_deferred_fails_without_retries(scenario: Scenario) -> None:
    scenario.assert_task("deferred_then_lost", "failed")
    assert scenario.run.tasks["deferred_then_lost"].try_number == 1, scenario.run.describe()
    assert "Lead lead_defer_lost is 'lost' (lossReason: 'Budget cut')" in scenario.run.output


def test_soft_fail_turns_a_lost_lead_into_a_skip(scenario: Scenario) -> None:
    scenario.assert_task("lost_soft_fail", "skipped")


def test_an_unknown_lead_fails_clearly_without_retries(scenario: Scenario) -> None:
    scenario.assert_task("unknown_lead", "failed")
    assert scenario.run.tasks["unknown_lead"].try_number == 1, scenario.run.describe()
    assert re.search(r"Octanist has no lead 'lead_does_not_exist'.*404 NOT_FOUND", scenario.run.output)
    assert scenario.gets("lead_does_not_exist") == 1


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferred"])
def test_soft_fail_never_skips_a_rejected_key(scenario: Scenario, mode: str) -> None:
    scenario.assert_task(f"rejected_key_soft_fail_{mode}", "failed")
    assert "Octanist rejected the API key of connection 'octanist_rejected'" in scenario.run.output


def test_soft_fail_never_skips_an_outage_reported_while_deferred(scenario: Scenario) -> None:
    assert scenario.flips["outage"].flipped.is_set(), "the sensor never checked the lead before deferring"
    assert "Deferring: the triggerer checks lead lead_outage" in scenario.run.output
    scenario.assert_task("outage_soft_fail_deferred", "failed")


def test_the_api_key_appears_nowhere(scenario: Scenario) -> None:
    # The key was sent with every request ...
    assert all(r.api_key_sent for r in scenario.server.requests)
    # ... and nowhere else: not in the CLI output, the task logs, the database or the config.
    # Airflow 3.0's `dags test` echoes its own secret-masking requests at debug level ("Sending
    # request msg=MaskSecret(value=...)"): Airflow registering the key with its log masker, not the
    # provider writing it anywhere. Every other line must be free of the key.
    output = [line for line in scenario.run.output.splitlines() if "MaskSecret(value=" not in line]
    assert not [line for line in output if API_KEY in line]
    assert scenario.home.files_containing(API_KEY) == []
