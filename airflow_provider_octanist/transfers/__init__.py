"""Transfer operators: Octanist data streamed to where data engineers keep it."""
