"""
What a lead's create and update bodies hold: fields kept or dropped, ``custom`` sent as a JSON
string, identifiers and values as Octanist takes them, and what is refused before any request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from airflow_provider_octanist._lead_bodies import create_lead_body, update_lead_body


def test_create_body_drops_none_and_keeps_documented_fields() -> None:
    body = create_lead_body(
        {"name": "Ada", "email": None, "custom": {"a": 1}, "analytics_storage": "granted", "sessionId": "s-1"}
    )

    assert body == {"name": "Ada", "custom": '{"a":1}', "analytics_storage": "granted", "sessionId": "s-1"}


@pytest.mark.parametrize(
    ("custom", "sent"),
    [
        ({"company": "Acme", "seats": 12}, '{"company":"Acme","seats":12}'),
        (["a", "b"], '["a","b"]'),
        ({"city": "Zürich"}, '{"city":"Zürich"}'),
        ('{"company": "Acme"}', '{"company": "Acme"}'),
        ("free text, not JSON", "free text, not JSON"),
    ],
)
def test_custom_is_sent_as_a_string_as_production_documents_it(custom: Any, sent: str) -> None:
    assert create_lead_body({"name": "Ada", "custom": custom})["custom"] == sent


@pytest.mark.parametrize(
    ("custom", "words"),
    [
        ({"when": datetime(2026, 1, 1)}, "Object of type datetime is not JSON serializable"),
        ({"value": float("nan")}, "Out of range float values are not JSON compliant"),
        (3, "custom must be a string, a dict or a list, got int"),
    ],
)
def test_custom_that_cannot_be_json_is_refused_naming_it(custom: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        create_lead_body({"name": "Ada", "custom": custom})
    assert str(caught.value).startswith("custom must")


def test_update_body_by_phone_with_a_numeric_string_value() -> None:
    body = update_lead_body(
        {
            "lead_id": None,
            "email": None,
            "phone": "+3120",
            "status": "Qualified",
            "value": " 250.50 ",
            "note": "",
            "loss_reason": None,
        }
    )

    assert body == {"phone": "+3120", "status": "qualified", "value": 250.5, "note": ""}


def test_update_body_sends_every_identifier_given() -> None:
    body = update_lead_body(
        {
            "lead_id": " lead_1 ",
            "email": "a@example.com",
            "phone": None,
            "status": "won",
            "value": 1,
            "note": None,
            "loss_reason": None,
        }
    )

    assert body == {"id": "lead_1", "email": "a@example.com", "status": "won", "value": 1}
