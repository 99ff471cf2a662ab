"""
What the operators' tests share: running an operator the way a task does.

Each test module imports it from here; fixtures come from the root ``conftest.py``.
"""

from __future__ import annotations

import json
from typing import Any


def run(operator: Any, context: dict[str, Any] | None = None) -> Any:
    """Render the operator's templates with ``context`` the way Airflow does, then execute it."""
    context = context or {}
    operator.render_template_fields(context)
    result = operator.execute(context)
    assert json.loads(json.dumps(result)) == result, "return values go to XCom and must be plain JSON"
    return result
