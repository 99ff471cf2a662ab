"""
The async hook's transport: one shared httpx client per event loop and connection, sending through
aiohttp where installed and httpx's own pools otherwise, each answer's body read within the size cap.
"""
