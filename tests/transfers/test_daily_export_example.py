"""The daily-export example DAG, run for a week of data intervals: a file per day, each lead once."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_octanist_daily_export.py"
WEEK = [datetime(2026, 3, 2, tzinfo=timezone.utc) + timedelta(days=n) for n in range(7)]


def export_task() -> Any:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    return bag.dags["example_octanist_daily_export"].get_task("export_updated_leads")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_a_backfilled_week_writes_a_file_per_day_with_every_lead_exactly_once(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    # Leads on every interval boundary, and one a millisecond either side of the week.
    expected: dict[str, str] = {}
    for start in WEEK:
        for offset in (timedelta(0), timedelta(hours=12), timedelta(days=1, milliseconds=-1)):
            lead = octanist_server.add_lead(updatedAt=stamp(start + offset))
            expected[lead["id"]] = start.strftime("%Y-%m-%d")
    octanist_server.add_lead(id="lead_before_the_week", updatedAt=stamp(WEEK[0] - timedelta(milliseconds=1)))
    octanist_server.add_lead(id="lead_after_the_week", updatedAt=stamp(WEEK[-1] + timedelta(days=1)))

    template = export_task()
    rendered_bounds = []
    for start in WEEK:
        task = copy.deepcopy(template)
        context = {
            "data_interval_start": start,
            "data_interval_end": start + timedelta(days=1),
            "params": {"export_url": (tmp_path / "exports").as_uri()},
        }
        task.render_template_fields(context)
        rendered_bounds.append((task.updated_gte, task.updated_lt))
        summary = task.execute(context)
        assert summary["path"] == f"{(tmp_path / 'exports').as_uri()}/leads-{start:%Y-%m-%d}.jsonl"
        assert summary["rows"] == 3

    # Each run starts exactly where the previous one ended: no gap, no overlap.
    assert all(rendered_bounds[i][1] == rendered_bounds[i + 1][0] for i in range(6))
    files = sorted((tmp_path / "exports").iterdir())
    assert [f.name for f in files] == [f"leads-{day:%Y-%m-%d}.jsonl" for day in WEEK]
    found: dict[str, str] = {}
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            lead_id = json.loads(line)["id"]
            assert lead_id not in found, f"{lead_id} exported twice"
            found[lead_id] = file.name.removeprefix("leads-").removesuffix(".jsonl")
    assert found == expected
