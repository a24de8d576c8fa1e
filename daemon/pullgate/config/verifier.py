"""The ``[image_verifier]`` table: how decisions for containerd's bindir verifier are scoped.

containerd's verifier executable is told only the top-level digest, not the platform the pull
will fetch (``ctr image pull --platform``, ``--all-platforms``). ``platforms = "all"`` (the
default) makes such a decision for an index cover every manifest containerd could fetch from it;
``"node"`` limits it to what this node's platform pulls. See the README's configuration reference
and docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from pullgate.config.checker import ConfigChecker
from pullgate.config.model import ImageVerifierConfig

__all__ = ["image_verifier"]

_KEYS = frozenset({"platforms"})


def image_verifier(chk: ConfigChecker, data: Mapping[str, object]) -> ImageVerifierConfig:
    """``[image_verifier]`` (defaults when the table is absent)."""
    default = ImageVerifierConfig()
    table = chk.section(data, "image_verifier", _KEYS)
    if table is None:
        return default
    return ImageVerifierConfig(
        platforms=chk.choice(table, "platforms", "image_verifier", default.platforms)
    )
