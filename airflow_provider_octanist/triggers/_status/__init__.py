"""
The lead-status trigger's wait: its own reads, and the change feed its triggers share per loop.

``wait`` (the trigger's algorithm), ``feed`` (the shared poll, its registry and where a trigger
joins it), ``subscription`` (one trigger's place in a feed: the only code that changes it),
``listing`` (the shared listing of one millisecond that tells whether the feed can see a lead),
``refusals`` (connections whose API refused the feed lately) and ``deletions`` (the count that
notices deleted leads). Nothing here is imported when a DAG file imports the trigger module.
"""
