"""OctanistLeadStatusSensor in-process: each check, deferral and resumption, against the fake server."""

from __future__ import annotations

import importlib
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_octanist.sensors import octanist as sensor_module
from airflow_provider_octanist.sensors.octanist import OctanistLeadStatusSensor
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

LEAD = "lead_sensor_1"


def sensor(**kwargs: Any) -> OctanistLeadStatusSensor:
    return OctanistLeadStatusSensor(**{"task_id": "wait", "lead_id": LEAD, "poke_interval": 0.01, **kwargs})


# -- arguments -----------------------------------------------------------------------------------


def test_defaults_wait_for_won_and_fail_on_lost() -> None:
    s = sensor()
    assert s.target_statuses == ("won",)
    assert s.failure_statuses == ("lost",)
    assert s.octanist_conn_id == "octanist_default"
    assert s.template_fields == ("lead_id", "octanist_conn_id")


def test_statuses_are_normalised_and_legacy_win_accepted() -> None:
    s = sensor(target_statuses=["Qualified", "win"], failure_statuses="LOST")
    assert s.target_statuses == ("qualified", "won")
    assert s.failure_statuses == ("lost",)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"target_statuses": ("won",), "failure_statuses": ("won", "lost")}, "both a target and a failure"),
        ({"target_statuses": ("closed",)}, "closed"),
        ({"target_statuses": ()}, "At least one lead status"),
        ({"octanist_conn_id": ""}, "octanist_conn_id"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors"),
        ({"deferrable": True, "poke_interval": 0}, "poke_interval"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        sensor(**kwargs)


def test_deferrable_defaults_to_the_operators_default_deferrable_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
        assert importlib.reload(sensor_module).OctanistLeadStatusSensor(task_id="w", lead_id=LEAD).deferrable
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
        assert (
            not importlib.reload(sensor_module).OctanistLeadStatusSensor(task_id="w", lead_id=LEAD).deferrable
        )
    finally:
        monkeypatch.undo()
        importlib.reload(sensor_module)


def test_constructing_the_sensor_makes_no_request(octanist_server: Any, octanist_conn: str) -> None:
    sensor(deferrable=True)
    assert octanist_server.request_count() == 0


# -- poke ----------------------------------------------------------------------------------------


def test_poke_is_not_done_while_the_lead_is_open(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id=LEAD)
    result = sensor().poke({})
    assert not result.is_done
    assert result.xcom_value is None


def test_poke_returns_the_lead_as_xcom_value_once_won(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id=LEAD, status="won", value=700)
    result = sensor().poke({})
    assert result.is_done
    assert result.xcom_value["id"] == LEAD
    assert result.xcom_value["value"] == 700
    json.dumps(result.xcom_value)


def test_a_lost_lead_fails_without_retry_naming_lead_status_and_reason(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id=LEAD, status="lost", lossReason="Picked a competitor")
    with pytest.raises(AirflowFailException) as failure:
        sensor().poke({})
    message = str(failure.value)
    assert LEAD in message
    assert "'lost'" in message
    assert "Picked a competitor" in message


def test_a_huge_loss_reason_is_capped_in_the_failure_message(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id=LEAD, status="lost", lossReason="r" * 1_000_000)
    with pytest.raises(AirflowFailException) as failure:
        sensor().poke({})
    message = str(failure.value)
    assert f"(lossReason: '{'r' * 498}\u2026), a failure status" in message
    assert len(message) < 1_000


def test_a_huge_status_is_capped_in_the_waiting_line(
    octanist_server: Any, octanist_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    octanist_server.add_lead(id=LEAD)

    def with_huge_status(payload: Any) -> Any:
        payload["data"]["status"] = "s" * 1_000_000
        return payload

    octanist_server.inject("transform", function=with_huge_status)
    assert not sensor().poke({}).is_done
    captured = capsys.readouterr()
    [waiting] = [line for line in (captured.out + captured.err).splitlines() if "waiting until" in line]
    assert f"is {'s' * 99}\u2026; waiting until it is won" in waiting
    assert len(waiting) < 1_000


def test_a_lost_lead_with_soft_fail_skips(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id=LEAD, status="lost")
    with pytest.raises(AirflowSkipException, match="no lossReason"):
        sensor(soft_fail=True).poke({})


def test_an_unknown_lead_fails_without_retry(octanist_server: Any, octanist_conn: str) -> None:
    with pytest.raises(AirflowFailException, match="Octanist has no lead 'lead_sensor_1'"):
        sensor().poke({})


def test_an_id_that_cannot_exist_fails_before_any_request(octanist_server: Any, octanist_conn: str) -> None:
    with pytest.raises(AirflowFailException, match="Cannot watch lead"):
        sensor(lead_id="   ").poke({})
    assert octanist_server.request_count() == 0


def test_server_errors_after_the_hooks_retries_are_ordinary_failures(
    octanist_server: Any, octanist_conn: str
) -> None:
    from airflow_provider_octanist.exceptions import OctanistServerError

    octanist_server.add_lead(id=LEAD)
    octanist_server.inject("status", status=503, count=100)
    with pytest.raises(OctanistServerError) as failure:
        sensor().poke({})
    assert not isinstance(failure.value, AirflowFailException), (
        "transient errors must leave retries to Airflow"
    )


def test_poke_mode_waits_until_the_lead_is_won(octanist_server: Any, octanist_conn: str) -> None:
    from dags_test_runner import FlipWhenSeen

    octanist_server.add_lead(id=LEAD)
    flip = FlipWhenSeen(octanist_server, LEAD, "won", after_requests=2, deadline=30, value=42)
    try:
        lead = sensor(timeout=30).execute({})
    finally:
        flip.stop()
    assert flip.flipped.is_set()
    assert lead["status"] == "won"
    assert lead["value"] == 42


def test_poke_mode_times_out(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id=LEAD)
    with pytest.raises(AirflowSensorTimeout):
        sensor(timeout=0.05).execute({})


# -- deferrable ----------------------------------------------------------------------------------


def test_deferrable_returns_at_once_without_a_trigger_when_already_won(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id=LEAD, status="won")
    lead = sensor(deferrable=True).execute({})
    assert lead["status"] == "won"
    assert octanist_server.request_count() == 1


def test_deferrable_fails_at_once_without_a_trigger_when_already_lost(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id=LEAD, status="lost", lossReason="Ghosted")
    with pytest.raises(AirflowFailException, match="Ghosted"):
        sensor(deferrable=True).execute({})


def test_deferrable_checks_once_then_defers_with_plain_trigger_kwargs(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id=LEAD, status="qualified")
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(
            deferrable=True,
            timeout=3600,
            poke_interval=45,
            target_statuses=("won",),
            failure_statuses=("lost",),
            max_consecutive_errors=4,
        ).execute({})
    assert octanist_server.request_count() == 1
    trigger = deferred.value.trigger
    assert isinstance(trigger, OctanistLeadStatusTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["lead_id"] == LEAD
    assert kwargs["poll_interval"] == 45
    assert kwargs["max_consecutive_errors"] == 4
    assert before + 3600 <= kwargs["end_time"] <= time.time() + 3600
    assert octanist_server.api_key not in json.dumps(kwargs)
    # Airflow's own deferral timeout is only a backstop behind the trigger's end time.
    assert deferred.value.timeout > timedelta(seconds=3600)


# -- resuming after the trigger ------------------------------------------------------------------


def won_lead(**fields: Any) -> dict[str, Any]:
    return {"id": LEAD, "status": "won", "value": 5, **fields}


def test_execute_complete_returns_the_lead_of_a_success_event() -> None:
    lead = won_lead()
    assert sensor().execute_complete({}, {"status": "success", "lead_id": LEAD, "lead": lead}) == lead


def test_execute_complete_fails_without_retry_on_a_failure_event() -> None:
    event = {"status": "failure", "lead": {"id": LEAD, "status": "lost", "lossReason": "Too pricey"}}
    with pytest.raises(AirflowFailException, match="Too pricey"):
        sensor().execute_complete({}, event)


def test_execute_complete_fails_without_retry_on_not_found() -> None:
    with pytest.raises(AirflowFailException, match="no lead"):
        sensor().execute_complete({}, {"status": "not_found", "message": f"Octanist has no lead {LEAD!r}"})


def test_execute_complete_raises_sensor_timeout_on_a_timeout_event() -> None:
    with pytest.raises(AirflowSensorTimeout, match="did not become"):
        sensor().execute_complete({}, {"status": "timeout", "message": f"Lead {LEAD} did not become won"})


def test_execute_complete_leaves_retries_to_airflow_on_an_error_event() -> None:
    with pytest.raises(AirflowException, match="Gave up") as failure:
        sensor().execute_complete(
            {}, {"status": "error", "message": "Gave up watching after 5 failed checks"}
        )
    assert not isinstance(failure.value, AirflowFailException)


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        "won",
        {"status": "surprise"},
        {"status": "success"},
        {"status": "success", "lead": {"id": LEAD, "status": "open"}},
        {"status": "failure", "lead": {"id": LEAD, "status": "won"}},
    ],
)
def test_execute_complete_treats_every_unexpected_event_as_a_failure(event: Any) -> None:
    with pytest.raises(AirflowException):
        sensor().execute_complete({}, event)


def test_soft_fail_skips_on_failure_and_not_found_events() -> None:
    s = sensor(soft_fail=True)
    with pytest.raises(AirflowSkipException):
        s.execute_complete({}, {"status": "failure", "lead": {"id": LEAD, "status": "lost"}})
    with pytest.raises(AirflowSkipException):
        s.execute_complete({}, {"status": "not_found", "message": "gone"})


# -- soft_fail skips outcomes, never errors ----------------------------------------------------------


def test_soft_fail_never_skips_a_rejected_key_in_poke_mode(
    octanist_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import connection_json

    from airflow_provider_octanist.exceptions import OctanistAuthError

    octanist_server.add_lead(id=LEAD)
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT", connection_json(octanist_server.url, "wrong-key-0000")
    )

    with pytest.raises(OctanistAuthError, match="rejected the API key"):
        sensor(soft_fail=True, timeout=30).execute({})


def test_soft_fail_never_skips_an_outage_in_poke_mode(octanist_server: Any, octanist_conn: str) -> None:
    from airflow_provider_octanist.exceptions import OctanistServerError

    octanist_server.add_lead(id=LEAD)
    octanist_server.inject("status", status=503, count=None)

    with pytest.raises(OctanistServerError):
        sensor(soft_fail=True, timeout=30).execute({})


def test_soft_fail_never_skips_an_outage_the_trigger_reports(
    octanist_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import connection_json, first_trigger_event

    octanist_server.add_lead(id=LEAD)
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        connection_json(octanist_server.url, octanist_server.api_key, retry_backoff=0.01, max_retries=0),
    )
    octanist_server.inject("status", status=503, count=None)
    event = first_trigger_event(
        OctanistLeadStatusTrigger(lead_id=LEAD, poll_interval=0.05, max_consecutive_errors=1)
    )
    assert event["status"] == "error"

    # Airflow's own resumption, as the task runner calls it after the trigger fired.
    with pytest.raises(AirflowException) as failure:
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, {})
    assert not isinstance(failure.value, AirflowSkipException)


def test_soft_fail_never_skips_a_trigger_that_failed(octanist_server: Any) -> None:
    with pytest.raises(Exception, match="Trigger crashed") as failure:
        sensor(soft_fail=True).resume_execution("__fail__", {"error": "Trigger crashed"}, {})
    assert not isinstance(failure.value, AirflowSkipException)


@pytest.mark.parametrize(
    "event",
    [
        {"status": "failure", "lead": {"id": LEAD, "status": "lost", "lossReason": "Too pricey"}},
        {"status": "not_found", "message": f"Octanist has no lead {LEAD!r}"},
        {"status": "timeout", "message": f"Lead {LEAD} did not become won"},
    ],
)
def test_soft_fail_still_skips_the_outcomes_on_resume(event: dict[str, Any]) -> None:
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, {})


def test_without_soft_fail_an_error_event_fails_the_task_to_be_retried() -> None:
    event = {"status": "error", "message": "Gave up watching after 1 failed check"}
    with pytest.raises(AirflowException, match="Gave up") as failure:
        sensor().resume_execution("execute_complete", {"event": event}, {})
    assert not isinstance(failure.value, (AirflowSkipException, AirflowFailException))
