"""Scripts run by make targets (``make demo``)."""
