"""The decision layer's one seam to content: a :class:`Store` of manifests, blobs and signatures.

Modelled on ratify-go's ``Store`` (https://github.com/notaryproject/ratify-go, ``store.go``):
resolve a reference, fetch a manifest or blob by descriptor, list a subject's signatures. The
decision engine (:mod:`pullgate.decision.decider`) reads content only through this protocol, so
the same engine runs over

* a registry (:class:`pullgate.registry.client.RegistryClient`: containerd's endpoints, auth,
  referrers API with tag-schema fallback);
* an OCI image layout (:class:`pullgate.oci.layout_store.LayoutStore`, ``pullgate verify
  --oci-layout``);
* memory (``tests/support/memory_store.py``: decision-layer tests without sockets).

Invariants every implementation keeps: every byte returned for a descriptor has that
descriptor's size and digest (checked, never trusted); a problem is a typed
:class:`~pullgate.errors.PullgateError` (definitive for content anyone can plant, inconclusive
for an outage), never another exception type.

A store is used by one thread at a time. :meth:`Store.session` binds, for one borrower, the
deadline its requests must end by and a hook that receives the seconds of every digest-verified
fetch (the decision's ``fetch`` phase timing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from pullgate.common.descriptor import Descriptor
from pullgate.registry.model import ImageReference
from pullgate.verification.verifier import SignatureBlob

__all__ = ["FetchHook", "LocalSession", "Store", "StoreSignatureSource"]

FetchHook = Callable[[float], None]
"""Receives the seconds one digest-verified fetch took."""


class Store(Protocol):
    """Where the decision engine reads an image and its signatures from."""

    def resolve(self, ref: ImageReference) -> Descriptor:
        """The descriptor ``ref`` (tag or digest) names.

        Raises:
            PullgateError: not found, unreachable, or content that does not match.
        """
        ...

    def fetch_manifest(self, ref: ImageReference, desc: Descriptor) -> bytes:
        """The bytes of manifest or index ``desc`` in ``ref``'s repository (size and digest
        verified, at most the store's manifest bound)."""
        ...

    def fetch_blob(self, ref: ImageReference, desc: Descriptor, cap: int) -> bytes:
        """The bytes of blob ``desc`` (at most ``cap`` bytes; size and digest verified)."""
        ...

    def signatures(self, ref: ImageReference, target: Descriptor) -> Iterator[SignatureBlob]:
        """The Notary signatures of ``target``, in the store's order (listing the referrers and
        fetching each signature manifest and its envelope)."""
        ...

    def session(
        self, *, deadline: float | None, on_fetch: FetchHook | None
    ) -> AbstractContextManager[None]:
        """Bind ``deadline`` (``time.perf_counter()`` seconds; None: none) and ``on_fetch`` to
        this store until the context ends."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


class StoreSignatureSource:
    """A :class:`~pullgate.verification.verifier.SignatureSource` over a store and a repository."""

    def __init__(self, store: Store, ref: ImageReference) -> None:
        self.store = store
        self.ref = ref

    def __repr__(self) -> str:
        return f"StoreSignatureSource({self.ref})"

    def signatures(self, target: Descriptor) -> Iterator[SignatureBlob]:
        """Signatures of ``target`` in store order."""
        return self.store.signatures(self.ref, target)


class LocalSession:
    """:meth:`Store.session` for stores without network I/O (no deadline to enforce): keeps the
    bound fetch hook and times reads with it (:meth:`timed`)."""

    _on_fetch: FetchHook | None = None

    @contextmanager
    def session(self, *, deadline: float | None, on_fetch: FetchHook | None) -> Iterator[None]:
        """Bind ``on_fetch`` until the context ends."""
        self._on_fetch = on_fetch
        try:
            yield
        finally:
            self._on_fetch = None

    def timed(self, read: Callable[[], bytes]) -> bytes:
        """``read()``, its duration reported to the bound hook."""
        started = time.perf_counter()
        try:
            return read()
        finally:
            if self._on_fetch is not None:
                self._on_fetch(time.perf_counter() - started)
