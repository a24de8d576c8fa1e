"""Trust anchors withdrawn from the configuration kept in force after a failed reload.

When a reload fails, the last good snapshot stays in force — but not the certificates whose
files were deleted or changed since that snapshot loaded them: an operator who deletes a CA (or
empties its store, which is itself invalid and fails the reload) must not find it still trusted.
:func:`withdraw_changed` re-reads every trust-store file the good snapshot loaded, by the same
rules, and returns the snapshot with only the files whose bytes are unchanged. A store left with
no file fails every decision that needs it (:attr:`StoreProblem.WITHDRAWN`). The result carries
its own digest, so nothing keyed by the snapshot digest (decision cache, resolve memo, clients)
answers from the time the anchor was trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
from types import MappingProxyType

from pullgate.trust.snapshot import Snapshot, combined_digest
from pullgate.verification.truststore import (
    StoreEntry,
    StoreKey,
    TrustStore,
    TrustStoreError,
)

HASH_WITHDRAWN = "withdrawn"


def _unchanged(store: TrustStore, key: StoreKey, entry: StoreEntry) -> bool:
    try:
        return store.entry_digest(key[0], key[1], entry.path) == entry.sha256
    except TrustStoreError:
        return False


def withdraw_changed(snapshot: Snapshot, *, everything: bool = False) -> Snapshot:
    """``snapshot`` without the trust-store files that changed on disk since it loaded them
    (``everything``: without any of its trust-store files).

    Returns ``snapshot`` itself when every file is unchanged; otherwise a copy with the same
    generation whose store holds only unchanged files, whose ``problems`` name every withdrawn
    file and store, and whose digest differs from every digest a loaded snapshot carries.
    """
    store = snapshot.trust.store
    kept: dict[StoreKey, tuple[StoreEntry, ...]] = {}
    withdrawn: dict[StoreKey, str] = {}
    notes: list[str] = []
    for key, entries in sorted(store.loaded().items()):
        survivors = tuple(e for e in entries if not everything and _unchanged(store, key, e))
        for entry in entries:
            if entry not in survivors:
                notes.append(
                    f"{entry.path}: deleted or changed since generation {snapshot.generation} "
                    "loaded it; its certificates are no longer trusted"
                )
        if survivors:
            kept[key] = survivors
        else:
            withdrawn[key] = (
                f"trust store {key[1]} of type {key[0]} is withdrawn: every file of it was "
                f"deleted or changed since generation {snapshot.generation} loaded it, and "
                "the configuration on disk failed to load"
            )
            notes.append(withdrawn[key])
    if not notes:
        return snapshot
    restricted = TrustStore.preloaded(
        store.trust_dir, allow_symlinks=store.allow_symlinks, entries=kept, withdrawn=withdrawn
    )
    marker = hashlib.sha256("\n".join(notes).encode("utf-8", "surrogateescape")).hexdigest()
    hashes = {**snapshot.hashes, HASH_WITHDRAWN: marker}
    return dataclasses.replace(
        snapshot,
        trust=dataclasses.replace(snapshot.trust, store=restricted),
        cert_memo=snapshot.cert_memo.fresh(),
        hashes=MappingProxyType(hashes),
        digest=combined_digest(hashes),
        problems=(*snapshot.problems, *notes),
    )
