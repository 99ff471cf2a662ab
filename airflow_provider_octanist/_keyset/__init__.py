"""
The keyset walk by ``updatedAt``, with no I/O: where a reader stands (``cursor``) and what it
asks next (``walk``).

The change feed (every watcher and the status feed) and the sync hook's export walk both drive it.
"""
