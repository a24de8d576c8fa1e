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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING

from pullgate.common.descriptor import Descriptor, is_digest
from pullgate.decision.model import Content, Decision
from pullgate.errors import MalformedInput, PullgateError
from pullgate.net.deadline import bounded_by
from pullgate.oci.gojson import decode_manifest_config
from pullgate.registry.model import ImageReference
from pullgate.registry.store import FetchHook, Store

if TYPE_CHECKING:
    from pullgate.decision.context import DecisionContext

__all__ = ["ContentRead", "config_digest"]

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


def _fetch_all(
    lend: Callable[[FetchHook | None], AbstractContextManager[Store]],
    ref: ImageReference,
    manifests: Sequence[Descriptor],
    deadline: float,
) -> list[bytes | PullgateError]:
    """Each manifest's bytes (digest- and size-verified), or why it could not be read."""
    out: list[bytes | PullgateError] = []
    for manifest in manifests:
        try:
            with bounded_by(deadline), lend(None) as client:
                out.append(client.fetch_manifest(ref, manifest))
        except PullgateError as exc:
            out.append(exc.with_traceback(None))  # no cycle through this frame
    return out


class ContentRead:
    """The manifests an allow will cover, read while its subjects are verified.

    Verifying a manifest's signature needs only its descriptor, so nothing else fetches its
    bytes; reading them after the verdict put one more registry round trip on every cold
    decision's path. The read is queued on ``executor`` (:meth:`start`, behind the subjects'
    pooled verifications) before the calling thread verifies its own subject; it always runs (a
    decision costs the same requests whatever its verdict), but only an allow waits for it and
    parses what it read. A read no pool thread has started by then runs on the calling thread;
    one unfinished at the deadline binds nothing (docs/decisions.md, "The covered manifest is
    read while the subjects are verified").
    """

    def __init__(
        self,
        executor: Executor,
        lend: Callable[[FetchHook | None], AbstractContextManager[Store]],
        ref: ImageReference,
        manifests: Sequence[Descriptor],
        *,
        deadline: float,
    ) -> None:
        self._executor = executor
        self._args = (lend, ref, tuple(manifests), deadline)
        self._future: Future[list[bytes | PullgateError]] | None = None

    def start(self) -> None:
        """Queue the read (once; when the executor is shut down, :meth:`bind` reads inline)."""
        if self._future is None:
            with suppress(RuntimeError):  # shut down (the daemon is stopping)
                self._future = self._executor.submit(_fetch_all, *self._args)

    def bind(self, decision: Decision, ctx: DecisionContext) -> Decision:
        """``decision`` with the content it covers (every manifest a runtime may run from it),
        when it is an allow that verification (not ``on_inconclusive``) reached."""
        if not decision.allowed or decision.inconclusive:
            return decision
        _lend, _ref, manifests, deadline = self._args
        if self._future is None or self._future.cancel():  # not started or still queued
            read = _fetch_all(*self._args)
        else:
            try:
                read = self._future.result(timeout=max(deadline - time.perf_counter(), 0.0))
            except FutureTimeout:
                log.warning("allow of %s binds no content: not read in time", decision.digest)
                return replace(decision, content=())
        platform = str(ctx.platform) if ctx.platform else None
        content = tuple(
            item
            for manifest, data in zip(manifests, read, strict=True)
            for item in _content(manifest, data, platform)
        )
        return replace(decision, content=content)


def _content(
    manifest: Descriptor, data: bytes | PullgateError, platform: str | None
) -> tuple[Content, ...]:
    """What ``manifest``'s bytes bind, or nothing when they could not be read or parsed (the
    allow then binds no content; a start gate verifies again rather than trusting it)."""
    try:
        if isinstance(data, PullgateError):
            raise data
        digest = config_digest(data)
    except PullgateError as exc:
        log.warning("allow of %s binds no content: %s", manifest.digest, exc)
        return ()
    return (Content(manifest_digest=manifest.digest, config_digest=digest, platform=platform),)
