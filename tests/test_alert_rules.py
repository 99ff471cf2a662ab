"""
The alert rules and the Grafana panels in ``docs/alerts/`` load, and name only metrics the code emits.

The emitted names are read from the code itself: the ``<what>`` of every ``self._prefix + "<what>"``
in ``FeedHealth``'s module, and the ``<kind>`` of every poll loop the triggers start (each
``kind="..."`` passed or defaulted). A renamed metric or a new kind with no rule fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

import airflow_provider_octanist
from airflow_provider_octanist.triggers._feed import health

ALERTS = Path(__file__).resolve().parent.parent / "docs" / "alerts"
PACKAGE = Path(airflow_provider_octanist.__file__).resolve().parent
STATSD_PREFIX = "airflow"
"""Airflow's default ``[metrics] statsd_prefix``, the one the rules are written for."""


def _whats() -> set[str]:
    """Each ``<what>`` that ``FeedHealth`` appends to its ``octanist.<kind>.`` prefix."""
    tree = ast.parse(Path(health.__file__).read_text())
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and isinstance(node.left, ast.Attribute)
            and node.left.attr == "_prefix"
            and isinstance(node.right, ast.Constant)
            and isinstance(node.right.value, str)
        ):
            found.add(node.right.value)
    return found


def _kinds() -> set[str]:
    """Each poll loop kind the triggers pass, or default, as ``kind``."""
    found = set()
    for path in (PACKAGE / "triggers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "kind" and isinstance(node.value, ast.Constant):
                found.add(node.value.value)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args[len(node.args.args) - len(node.args.defaults) :]
                for arg, default in zip(args, node.args.defaults, strict=True):
                    if arg.arg == "kind" and isinstance(default, ast.Constant):
                        found.add(default.value)
    return found


def emitted() -> set[str]:
    """Every metric the poll loops emit, as statsd_exporter names it (dots to underscores)."""
    return {f"{STATSD_PREFIX}_{health.METRIC_PREFIX}_{kind}_{what}" for kind in _kinds() for what in _whats()}


def _names_in(expression: str) -> set[str]:
    return set(re.findall(rf"\b{STATSD_PREFIX}_{health.METRIC_PREFIX}_[a-z_]+\b", expression))


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load((ALERTS / "prometheus-rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _panels() -> list[dict[str, list[dict[str, str]]]]:
    document = json.loads((ALERTS / "grafana-dashboard.json").read_text())
    panels: list[dict[str, list[dict[str, str]]]] = document["panels"]
    return panels


def test_the_code_is_read_for_every_kind_and_metric() -> None:
    assert _kinds() == {"event_trigger", "shared_poll", "status_feed"}
    assert {"polls", "errors", "leads_reported", "seconds_since_progress"} <= _whats()


def test_every_rule_is_an_alert_with_an_expression_a_summary_and_a_severity() -> None:
    rules = _rules()
    assert rules
    for rule in rules:
        assert isinstance(rule["alert"], str)
        assert isinstance(rule["expr"], str)
        assert rule["annotations"]["summary"]  # type: ignore[index]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}  # type: ignore[index]


def test_the_rules_name_only_metrics_the_code_emits() -> None:
    used = set().union(*(_names_in(str(rule["expr"])) for rule in _rules()))
    assert used
    assert used <= emitted(), sorted(used - emitted())


def test_every_kind_has_a_rule_on_its_seconds_since_progress() -> None:
    used = set().union(*(_names_in(str(rule["expr"])) for rule in _rules()))
    for kind in _kinds():
        assert f"{STATSD_PREFIX}_{health.METRIC_PREFIX}_{kind}_seconds_since_progress" in used


def test_the_grafana_panels_name_only_metrics_the_code_emits() -> None:
    targets = [target for panel in _panels() for target in panel["targets"]]
    used = set().union(*(_names_in(target["expr"]) for target in targets))
    assert used
    assert used <= emitted(), sorted(used - emitted())


def test_each_panel_names_its_queries_apart() -> None:
    for panel in _panels():
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs)
