"""The lead operators, executed against the fake Octanist server over loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_octanist.operators.octanist import (
    OctanistCreateLeadOperator,
    OctanistGetLeadOperator,
    OctanistListLeadsOperator,
    OctanistUpdateLeadOperator,
)

from .helpers import run


def last_line_printed_by(code: str) -> str:
    """Run ``code`` in a fresh interpreter; the last line it printed."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip().splitlines()[-1]


# -- get ----------------------------------------------------------------------------------------


def test_get_lead_returns_the_lead_with_a_templated_id(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id="lead_get_1", name="Ada", status="qualified", value=250)
    op = OctanistGetLeadOperator(task_id="get", lead_id="{{ params.lead }}")
    lead = run(op, {"params": {"lead": "lead_get_1"}})
    assert op.lead_id == "lead_get_1"
    assert lead["id"] == "lead_get_1"
    assert lead["status"] == "qualified"
    assert lead["value"] == 250


def test_get_lead_of_an_unknown_id_raises_not_found(octanist_server: Any, octanist_conn: str) -> None:
    from airflow_provider_octanist.exceptions import OctanistNotFoundError

    with pytest.raises(OctanistNotFoundError, match="lead_missing"):
        run(OctanistGetLeadOperator(task_id="get", lead_id="lead_missing"))


def test_operators_use_the_given_connection_id(octanist_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import connection_json

    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_EU", connection_json(octanist_server.url, octanist_server.api_key)
    )
    octanist_server.add_lead(id="lead_eu")
    lead = run(OctanistGetLeadOperator(task_id="get", lead_id="lead_eu", octanist_conn_id="octanist_eu"))
    assert lead["id"] == "lead_eu"


# -- list ---------------------------------------------------------------------------------------


def test_list_leads_reads_every_page(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_leads(7, status="won")
    octanist_server.add_leads(2, status="open")
    leads = run(OctanistListLeadsOperator(task_id="list", status="won", page_size=3))
    assert len(leads) == 7
    assert {lead["status"] for lead in leads} == {"won"}
    assert octanist_server.request_count("GET", "/api/leads") == 3


def test_list_leads_renders_the_data_interval_into_time_filters(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id="lead_before", updatedAt="2026-03-09T23:59:59.999Z")
    octanist_server.add_lead(id="lead_at_start", updatedAt="2026-03-10T00:00:00.000Z")
    octanist_server.add_lead(id="lead_inside", updatedAt="2026-03-10T13:30:00.000Z")
    octanist_server.add_lead(id="lead_at_end", updatedAt="2026-03-11T00:00:00.000Z")
    op = OctanistListLeadsOperator(
        task_id="list",
        updated_gte="{{ data_interval_start }}",
        updated_lt="{{ data_interval_end }}",
        sort="updatedAt:asc",
    )
    context = {
        "data_interval_start": datetime(2026, 3, 10, tzinfo=timezone.utc),
        "data_interval_end": datetime(2026, 3, 11, tzinfo=timezone.utc),
    }
    leads = run(op, context)
    assert [lead["id"] for lead in leads] == ["lead_at_start", "lead_inside"]
    query = octanist_server.requests[-1].query
    assert query["updatedAt[gte]"] == ["2026-03-10T00:00:00.000Z"]
    assert query["updatedAt[lt]"] == ["2026-03-11T00:00:00.000Z"]


def test_list_leads_passes_extra_filters_and_caps_results(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_leads(4, source="api", gclid="g-1")
    octanist_server.add_leads(3, source="api")
    op = OctanistListLeadsOperator(
        task_id="list",
        extra_filters={"source": "{{ params.source }}", "filters": {"gclid[exists]": True}},
        max_results=3,
        page_size=2,
    )
    leads = run(op, {"params": {"source": "api"}})
    assert len(leads) == 3
    assert all(lead["gclid"] == "g-1" for lead in leads)
    assert octanist_server.requests[-1].query["source"] == ["api"]


def test_an_empty_rendered_filter_means_no_filter(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_leads(2, status="open")
    leads = run(
        OctanistListLeadsOperator(task_id="list", status="{{ params.status }}"), {"params": {"status": ""}}
    )
    assert len(leads) == 2
    assert "status" not in octanist_server.requests[-1].query


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"max_results": 0}, "max_results"),
        ({"extra_filters": {"colour": "red"}}, "colour"),
        ({"extra_filters": ["status"]}, "extra_filters"),
        ({"octanist_conn_id": ""}, "octanist_conn_id"),
    ],
)
def test_list_leads_refuses_bad_arguments_when_the_dag_is_parsed(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        OctanistListLeadsOperator(task_id="list", **kwargs)


def test_a_filter_given_twice_is_refused(octanist_server: Any, octanist_conn: str) -> None:
    op = OctanistListLeadsOperator(task_id="list", status="won", extra_filters={"status": "lost"})
    with pytest.raises(ValueError, match="status"):
        run(op)
    assert octanist_server.request_count() == 0


def test_an_invalid_rendered_status_fails_before_any_request(
    octanist_server: Any, octanist_conn: str
) -> None:
    with pytest.raises(ValueError, match="closed"):
        run(OctanistListLeadsOperator(task_id="list", status="closed"))
    assert octanist_server.request_count() == 0


# -- create -------------------------------------------------------------------------------------


def test_create_lead_returns_the_new_id(octanist_server: Any, octanist_conn: str) -> None:
    op = OctanistCreateLeadOperator(
        task_id="create",
        name="{{ params.name }}",
        email="grace@example.com",
        custom={"company": "{{ params.company }}"},
        lead_fields={"utm_source": "airflow", "website": "https://example.com"},
    )
    lead_id = run(op, {"params": {"name": "Grace Hopper", "company": "Navy"}})
    assert isinstance(lead_id, str)
    stored = octanist_server.lead(lead_id)
    assert stored["name"] == "Grace Hopper"
    assert stored["email"] == "grace@example.com"
    assert json.loads(stored["custom"]) == {"company": "Navy"}
    assert stored["utm_source"] == "airflow"
    assert stored["status"] == "open"


def _the_line_with(capsys: pytest.CaptureFixture[str], words: str) -> str:
    """The one line logged with ``words``, checked to be short."""
    captured = capsys.readouterr()
    [line] = [line for line in (captured.out + captured.err).splitlines() if words in line]
    assert len(line) < 1_000, f"{len(line)} characters in one log line"
    return line


def _next_answer_with(octanist_server: Any, **data: Any) -> None:
    """The next answer's ``data`` with ``data``'s fields set (each a megabyte of text, say)."""

    def change(payload: Any) -> Any:
        payload["data"].update(data)
        return payload

    octanist_server.inject("transform", function=change)


def test_a_huge_status_of_a_fetched_lead_is_capped_in_the_log_line(
    octanist_server: Any, octanist_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    octanist_server.add_lead(id="lead_1")
    _next_answer_with(octanist_server, status="s" * 1_000_000)
    run(OctanistGetLeadOperator(task_id="get", lead_id="lead_1"))
    assert f"is {'s' * 99}\u2026." in _the_line_with(capsys, "Lead lead_1 is")


def test_a_huge_id_of_a_created_lead_is_capped_in_the_log_line(
    octanist_server: Any, octanist_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _next_answer_with(octanist_server, id="L" * 1_000_000)
    assert run(OctanistCreateLeadOperator(task_id="create", name="Ada")) == "L" * 1_000_000
    assert f"lead {'L' * 99}\u2026" in _the_line_with(capsys, "Created Octanist lead")


def test_huge_texts_of_an_update_answer_are_capped_in_the_log_line(
    octanist_server: Any, octanist_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    octanist_server.add_lead(id="lead_upd", status="qualified")
    _next_answer_with(octanist_server, leadId="L" * 1_000_000, leadsUpdated="1" * 1_000_000)
    run(OctanistUpdateLeadOperator(task_id="won", lead_id="lead_upd", status="won", value=1))
    assert f"updated {'1' * 99}\u2026 lead(s) (lead {'L' * 99}\u2026)" in _the_line_with(
        capsys, "Octanist updated"
    )


def test_create_lead_leaves_out_fields_that_rendered_empty(octanist_server: Any, octanist_conn: str) -> None:
    op = OctanistCreateLeadOperator(task_id="create", name="Ada", phone="{{ params.phone }}")
    run(op, {"params": {"phone": ""}})
    assert "phone" not in octanist_server.requests[-1].body


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "at least one of name, email, phone or custom"),
        ({"name": "Ada", "lead_fields": {"status": "won"}}, "status"),
        ({"name": "Ada", "lead_fields": {"email": "a@example.com"}}, "email"),
    ],
)
def test_create_lead_refuses_bad_arguments_when_the_dag_is_parsed(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        OctanistCreateLeadOperator(task_id="create", **kwargs)


# -- update -------------------------------------------------------------------------------------


def test_update_lead_marks_a_lead_won_with_a_templated_value(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_lead(id="lead_upd", status="qualified")
    op = OctanistUpdateLeadOperator(
        task_id="won", lead_id="lead_upd", status="{{ params.status }}", value="{{ params.value }}"
    )
    result = run(op, {"params": {"status": "won", "value": 1200}})
    assert result["leadId"] == "lead_upd"
    assert result["leadsUpdated"] == 1
    stored = octanist_server.lead("lead_upd")
    assert stored["status"] == "won"
    assert stored["value"] == 1200


def test_marking_a_lead_won_twice_is_harmless(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id="lead_twice", status="qualified")
    first = run(OctanistUpdateLeadOperator(task_id="won", lead_id="lead_twice", status="won", value=500))
    after_first = octanist_server.lead("lead_twice")
    second = run(OctanistUpdateLeadOperator(task_id="won", lead_id="lead_twice", status="won", value=500))
    after_second = octanist_server.lead("lead_twice")
    assert first["leadsUpdated"] == second["leadsUpdated"] == 1
    unchanged = ("status", "value", "qualifiedAt", "lossReason")
    assert {k: after_first[k] for k in unchanged} == {k: after_second[k] for k in unchanged}
    assert after_second["status"] == "won"


def test_update_lead_by_email_and_loss_reason(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_lead(id="lead_mail", email="lin@example.com")
    run(
        OctanistUpdateLeadOperator(
            task_id="lost", email="lin@example.com", status="lost", loss_reason="No budget"
        )
    )
    stored = octanist_server.lead("lead_mail")
    assert stored["status"] == "lost"
    assert stored["lossReason"] == "No budget"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"status": "won"}, "lead_id, email or phone"),
        ({"lead_id": "lead_x"}, "nothing to change"),
        ({"lead_id": "lead_x", "status": "won", "octanist_conn_id": None}, "octanist_conn_id"),
    ],
)
def test_update_lead_refuses_bad_arguments_when_the_dag_is_parsed(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        OctanistUpdateLeadOperator(task_id="update", **kwargs)


def test_an_unsettable_rendered_status_fails_before_any_request(
    octanist_server: Any, octanist_conn: str
) -> None:
    op = OctanistUpdateLeadOperator(task_id="update", lead_id="lead_x", status="{{ params.s }}")
    with pytest.raises(ValueError, match="open"):
        run(op, {"params": {"s": "open"}})
    assert octanist_server.request_count() == 0


# -- shape ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "fields"),
    [
        (OctanistGetLeadOperator, {"lead_id"}),
        (OctanistListLeadsOperator, {"status", "updated_gte", "updated_lt", "search", "extra_filters"}),
        (OctanistCreateLeadOperator, {"name", "email", "phone", "custom", "note", "lead_fields"}),
        (OctanistUpdateLeadOperator, {"lead_id", "email", "status", "value", "note", "loss_reason"}),
    ],
)
def test_user_facing_arguments_are_templated(operator: type, fields: set[str]) -> None:
    assert fields <= set(operator.template_fields)


@pytest.mark.parametrize(
    "operator",
    [
        OctanistGetLeadOperator,
        OctanistListLeadsOperator,
        OctanistCreateLeadOperator,
        OctanistUpdateLeadOperator,
    ],
)
def test_the_connection_id_is_templated(operator: type) -> None:
    assert "octanist_conn_id" in operator.template_fields


def test_a_templated_connection_id_is_rendered_before_the_hook_is_made(
    octanist_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import connection_json

    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_EU", connection_json(octanist_server.url, octanist_server.api_key)
    )
    octanist_server.add_lead(id="lead_eu")
    op = OctanistGetLeadOperator(
        task_id="get", lead_id="lead_eu", octanist_conn_id="octanist_{{ params.region }}"
    )
    assert run(op, {"params": {"region": "eu"}})["id"] == "lead_eu"
    assert op.octanist_conn_id == "octanist_eu"


@pytest.mark.parametrize(
    ("operator", "renderers"),
    [
        (OctanistListLeadsOperator, {"extra_filters": "json"}),
        (OctanistCreateLeadOperator, {"custom": "json", "lead_fields": "json"}),
    ],
)
def test_dict_fields_render_as_json_in_the_ui(operator: Any, renderers: dict[str, str]) -> None:
    assert operator.template_fields_renderers == renderers
    assert set(renderers) <= set(operator.template_fields)


def test_constructing_operators_makes_no_request(octanist_server: Any, octanist_conn: str) -> None:
    OctanistGetLeadOperator(task_id="g", lead_id="lead_1")
    OctanistListLeadsOperator(task_id="l", status="won")
    OctanistCreateLeadOperator(task_id="c", name="Ada")
    OctanistUpdateLeadOperator(task_id="u", lead_id="lead_1", status="won")
    assert octanist_server.request_count() == 0


def test_importing_operators_sensor_and_trigger_loads_no_http_client_or_hook() -> None:
    # What Airflow itself loads (Airflow 2 imports requests on its own) is the baseline.
    code = (
        "import sys\n"
        "from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator\n"
        "import airflow.triggers.base\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_octanist.operators.octanist\n"
        "import airflow_provider_octanist.sensors.octanist\n"
        "import airflow_provider_octanist.triggers.octanist\n"
        "heavy = ('requests', 'httpx', 'urllib3',\n"
        "         'airflow_provider_octanist.hooks', 'airflow_provider_octanist.testing')\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(heavy)))\n"
    )
    assert last_line_printed_by(code) == "[]"


def test_importing_operators_and_sensor_loads_no_compat_layer_beyond_the_task_sdk() -> None:
    # common.compat's sdk module is three modules and a lazy lookup per name: a quarter of the
    # import's cost while DAG files are parsed. Only the methods that run in a task use it.
    code = (
        "import sys\n"
        "try:\n"
        "    import airflow.sdk\n"
        "except ImportError:\n"
        "    import airflow.models  # Airflow 2\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_octanist.operators.octanist\n"
        "import airflow_provider_octanist.sensors.octanist\n"
        "compat = 'airflow.providers.common.compat'\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(compat)))\n"
    )
    assert last_line_printed_by(code) == "[]"
