"""What an allow covers: the manifest a runtime stores and runs, and its config digest.

A runtime names an image by its config digest (the "image ID": containerd's ``ImageStatus`` id,
NRI's ``Image.config_digest``), not by the index or manifest digest a pull verified. To bind a
verdict to the content that runs, an allow records, for the manifest it covers (the platform
manifest chosen from an index, or the plain manifest), that manifest's ``config.digest``
(OCI image spec, https://github.com/opencontainers/image-spec/blob/main/manifest.md). The
manifest is fetched by digest (digest- and size-verified), so the config digest read from it is
the one the registry's signed bytes name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING

from pullgate.deadline import bounded_by
from pullgate.decision.model import Content, Decision
from pullgate.descriptor import Descriptor, is_digest
from pullgate.errors import MalformedInput, PullgateError
from pullgate.oci.gojson import decode_manifest_config
from pullgate.registry.model import ImageReference
from pullgate.registry.store import FetchHook, Store

if TYPE_CHECKING:
    from pullgate.decision.context import DecisionContext

__all__ = ["bind_content", "config_digest", "read_content"]

log = logging.getLogger(__name__)


def config_digest(manifest: bytes) -> str:
    """The ``config.digest`` of an image manifest's bytes, read as containerd reads it
    (:func:`pullgate.oci.gojson.decode_manifest_config`).

    Raises:
        MalformedInput: not a manifest with a valid ``config`` digest.
        AmbiguousDocument: a manifest containerd might read otherwise than pullgate.
    """
    digest = decode_manifest_config(manifest).digest
    if not is_digest(digest):
        raise MalformedInput(f"manifest config digest invalid: {digest!r}")
    return digest


def read_content(
    lend: Callable[[FetchHook | None], AbstractContextManager[Store]],
    ref: ImageReference,
    manifest: Descriptor,
    platform: str | None,
    *,
    deadline: float,
) -> tuple[Content, ...]:
    """The content ``manifest`` stands for, or none when it cannot be read in time (the allow
    then binds no content; a start gate verifies again rather than trusting it)."""
    try:
        with bounded_by(deadline), lend(None) as client:
            data = client.fetch_manifest(ref, manifest)
        digest = config_digest(data)
    except PullgateError as exc:
        log.warning("allow of %s binds no content: %s", manifest.digest, exc)
        return ()
    return (Content(manifest_digest=manifest.digest, config_digest=digest, platform=platform),)


def bind_content(
    decision: Decision,
    lend: Callable[[FetchHook | None], AbstractContextManager[Store]],
    ref: ImageReference,
    manifests: Sequence[Descriptor],
    ctx: DecisionContext,
) -> Decision:
    """``decision`` with the content it covers (every manifest a runtime may run from it), when
    it is an allow that verification (not ``on_inconclusive``) reached."""
    if not decision.allowed or decision.inconclusive:
        return decision
    platform = str(ctx.platform) if ctx.platform else None
    content = tuple(
        item
        for manifest in manifests
        for item in read_content(lend, ref, manifest, platform, deadline=ctx.deadline)
    )
    return replace(decision, content=content)
