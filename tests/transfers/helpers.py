"""What the transfer tests share: running an operator as Airflow does, and the Parquet skip."""

from __future__ import annotations

import json
from importlib.util import find_spec
from typing import Any

import pytest

needs_pyarrow = pytest.mark.skipif(
    find_spec("pyarrow") is None,
    reason="pyarrow is not installed (pip install 'airflow-provider-octanist[parquet]')",
)


def run(operator: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the operator's templates with ``context`` the way Airflow does, then execute it."""
    context = context or {}
    operator.render_template_fields(context)
    result: dict[str, Any] = operator.execute(context)
    assert json.loads(json.dumps(result)) == result, "the summary goes to XCom and must be plain JSON"
    return result
