"""
The old name of ``hooks/_transport/shared_client.py``, kept for code that still imports it:
the very same module object, so that setting ``PREFER_AIOHTTP`` through either name sets both.
"""

import sys

from airflow_provider_octanist.hooks._transport import shared_client

sys.modules[__name__] = shared_client
