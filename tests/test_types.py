"""``types.py`` spells out, for editors, the names the lead vocabulary declares for the code."""

from __future__ import annotations

import typing

from airflow_provider_octanist import _lead_vocabulary as vocabulary
from airflow_provider_octanist.statuses import LEAD_STATUSES
from airflow_provider_octanist.types import Lead, LeadFilters, LeadStatus, LeadUpdate, NewLead


def test_lead_filters_are_the_keyword_filters_the_hooks_accept() -> None:
    assert tuple(LeadFilters.__annotations__) == vocabulary.LIST_FILTERS


def test_new_lead_fields_are_the_fields_a_new_lead_takes() -> None:
    assert NewLead.__optional_keys__ == vocabulary.CREATE_FIELDS


def test_lead_update_arguments_are_those_of_update_lead() -> None:
    assert tuple(LeadUpdate.__annotations__) == vocabulary.UPDATE_FIELDS


def test_lead_status_is_every_status_a_lead_can_have() -> None:
    assert typing.get_args(LeadStatus) == LEAD_STATUSES


def test_a_lead_has_every_attribution_field_a_new_lead_can_be_given() -> None:
    settable = set(vocabulary.CLICK_ID_FIELDS) | set(vocabulary.UTM_FIELDS) | set(vocabulary.CONSENT_FIELDS)

    assert settable <= Lead.__optional_keys__
