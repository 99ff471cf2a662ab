"""
Values the ``_api`` tests share: a connection's settings, a list call that may be replayed and a
create call that may not, and a logger for the retry policy to write to.
"""

from __future__ import annotations

import logging

from airflow_provider_octanist import _api as api

SETTINGS = api.Settings(conn_id="octanist_default", base_url=api.DEFAULT_BASE_URL, api_key="K", backoff=1.0)
LIST = api.Call("GET", "/leads", {"limit": "100"})
CREATE = api.Call("POST", "/leads", body={"name": "x"}, replay_safe=False)
LOG = logging.getLogger("tests.api")
