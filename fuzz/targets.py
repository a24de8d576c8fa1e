"""Every fuzz target by name (see ``fuzz/README.md``)."""

from __future__ import annotations

from fuzz import targets_decision, targets_image, targets_parsers, targets_registry
from fuzz.oracle import FuzzTarget

TARGETS: dict[str, FuzzTarget] = {
    t.name: t
    for t in (
        *targets_parsers.TARGETS,
        *targets_decision.TARGETS,
        *targets_registry.TARGETS,
        *targets_image.TARGETS,
    )
}
