"""
The old name of ``hooks/_transport/aiohttp_transport.py``, kept for code that still imports it:
the very same module object (importable only where aiohttp is installed, as before).
"""

import sys

from airflow_provider_octanist.hooks._transport import aiohttp_transport

sys.modules[__name__] = aiohttp_transport
