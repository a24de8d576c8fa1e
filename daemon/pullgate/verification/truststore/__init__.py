"""Named x509 trust stores, read with notation's rules (docs/notation.md §7).

Layout: ``<trust_dir>/truststore/x509/{ca|signingAuthority|tsa}/<name>/<files>``.

Rules, in the order they are applied to one named store:

1. the name matches ``^[a-zA-Z0-9_.-]+$`` (``.`` and ``..`` are refused too: notation's regex
   lets them through, and they would name the parent directories);
2. the store path exists and is a real directory, **not a symlink**;
3. every entry is a regular file: a sub-directory or a symlink is an error (notation deviates
   from the spec here, which says sub-directories are ignored);
4. each file holds one or more PEM ``CERTIFICATE`` blocks or, when it has no PEM block at all,
   concatenated DER certificates;
5. each certificate is a CA (``basicConstraints cA=true``) or verifies its own signature;
6. in a ``tsa`` store each certificate must also be a self-issued root that can sign itself as
   a CA;
7. a store without any certificate is an error.

Symlinks: notation rejects them, but Kubernetes ConfigMap/Secret volumes are built from them
(``file -> ..data/file``, ``..data -> ..2024_01_01_00_00_00.1``). ``allow_symlinks=True`` follows
symlinks, for a store directory, its entries or a policy file, but then requires every such path
to resolve inside ``trust_dir`` (so a link cannot pull trust anchors from elsewhere); in that mode
the kubelet's own ``..``-prefixed entries inside a store are skipped. The default is notation's
rule, which looks only at the last path component.

The certificate rules (4-6) are in :mod:`pullgate.verification.truststore.certs`;
:func:`parse_certificates` is re-exported here.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cryptography import x509

from pullgate.verification.truststore.certs import (
    is_ca,
    parse_certificates,
    root_ca_error,
    self_signature_ok,
)
from pullgate.verification.truststore.model import (
    StoreEntry,
    StoreKey,
    StoreProblem,
    StoreType,
    TrustStoreError,
    TrustStoreRef,
)
from pullgate.verification.x509.certs import X509_DECODE_ERRORS
from pullgate.verification.x509.identity import go_name_string, go_quote

__all__ = [
    "STORE_NAME_PATTERN",
    "StoreEntry",
    "StoreKey",
    "StoreProblem",
    "StoreType",
    "TrustStore",
    "TrustStoreError",
    "TrustStoreRef",
    "parse_certificates",
    "resolves_inside",
]

STORE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_.-]+")
"""Named-store names (policy and disk); always used with ``fullmatch``."""
_KUBELET_PREFIX = ".."


_Fail = Callable[[StoreProblem, str], TrustStoreError]


def resolves_inside(path: Path, root: Path) -> bool:
    """True when ``path`` exists and, all symlinks resolved, lies inside ``root``."""
    try:
        resolved = path.resolve(strict=True)
        base = root.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return base in resolved.parents


# ----------------------------------------------------------------------------- the store


class TrustStore:
    """Reads named stores under ``trust_dir`` and caches them per (type, name); thread-safe."""

    def __init__(self, trust_dir: Path, *, allow_symlinks: bool = False) -> None:
        """Create a reader.

        Args:
            trust_dir: notation configuration directory (holds ``truststore/x509``).
            allow_symlinks: follow symlinks that resolve inside ``trust_dir`` (ConfigMap
                mounts) instead of rejecting them as notation does.
        """
        self.trust_dir = trust_dir
        self.allow_symlinks = allow_symlinks
        self._lock = threading.Lock()
        self._cache: dict[StoreKey, tuple[x509.Certificate, ...]] = {}
        self._entries: dict[StoreKey, tuple[StoreEntry, ...]] = {}
        self._withdrawn: dict[StoreKey, str] = {}
        self._sealed = False

    @classmethod
    def preloaded(
        cls,
        trust_dir: Path,
        *,
        allow_symlinks: bool,
        entries: Mapping[StoreKey, tuple[StoreEntry, ...]],
        withdrawn: Mapping[StoreKey, str],
    ) -> TrustStore:
        """A store that never reads the disk: ``entries`` are its stores; a store in
        ``withdrawn`` (or not given at all) fails with :attr:`StoreProblem.WITHDRAWN`."""
        store = cls(trust_dir, allow_symlinks=allow_symlinks)
        store._sealed = True
        store._withdrawn = dict(withdrawn)
        for key, kept in entries.items():
            store._entries[key] = kept
            store._cache[key] = tuple(c for entry in kept for c in entry.certs)
        return store

    def loaded(self) -> dict[StoreKey, tuple[StoreEntry, ...]]:
        """Every store loaded so far, file by file."""
        with self._lock:
            return dict(self._entries)

    def entry_digest(self, store_type: StoreType, name: str, file: Path) -> str | None:
        """sha256 hex of ``file`` of a store as :meth:`load` would read it now (None: skipped).

        Raises:
            TrustStoreError: the file is gone, not a regular file or unreadable.
        """

        def fail(problem: StoreProblem, detail: str) -> TrustStoreError:
            return TrustStoreError(detail, store_type=store_type, name=name, problem=problem)

        data = self._entry_bytes(file, store_type, name, fail)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def store_path(self, store_type: StoreType, name: str) -> Path:
        """Where the named store lives."""
        return self.trust_dir / "truststore" / "x509" / store_type.value / name

    def load(self, store_type: StoreType, name: str) -> tuple[x509.Certificate, ...]:
        """All certificates of one named store.

        Raises:
            TrustStoreError: any rule of §7 is broken (see :class:`StoreProblem`).
        """
        try:
            key = (StoreType(store_type), name)
        except ValueError as exc:
            raise TrustStoreError(
                f"unsupported trust store type: {store_type}",
                store_type=store_type,
                name=name,
                problem=StoreProblem.INVALID_TYPE,
            ) from exc
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                if self._sealed or key in self._withdrawn:
                    raise TrustStoreError(
                        self._withdrawn.get(key)
                        or f"trust store {key[1]} of type {key[0]} was not loaded with the "
                        "configuration in force",
                        store_type=key[0],
                        name=name,
                        problem=StoreProblem.WITHDRAWN,
                    )
                entries = self._read(*key)
                cached = tuple(c for entry in entries for c in entry.certs)
                self._cache[key] = cached
                self._entries[key] = entries
        return cached

    def load_many(self, refs: Iterable[TrustStoreRef]) -> tuple[x509.Certificate, ...]:
        """Certificates of several stores, each distinct ref loaded once, in first-seen order.

        Raises:
            TrustStoreError: the first store that cannot be used.
        """
        seen: set[tuple[StoreType, str]] = set()
        certs: list[x509.Certificate] = []
        for ref in refs:
            key = (ref.type, ref.name)
            if key in seen:
                continue
            seen.add(key)
            certs.extend(self.load(ref.type, ref.name))
        return tuple(certs)

    def list_stores(self) -> list[tuple[StoreType, str]]:
        """Every named store directory present on disk (diagnostics), sorted."""
        found: list[tuple[StoreType, str]] = []
        for store_type in StoreType:
            base = self.trust_dir / "truststore" / "x509" / store_type.value
            try:
                names = sorted(os.listdir(base))
            except OSError:
                continue
            for name in names:
                if name.startswith(_KUBELET_PREFIX) and self.allow_symlinks:
                    continue
                if (base / name).is_dir():
                    found.append((store_type, name))
        return found

    # ------------------------------------------------------------------------- internals

    def _inside(self, path: Path) -> bool:
        return resolves_inside(path, self.trust_dir)

    def _read(self, store_type: StoreType, name: str) -> tuple[StoreEntry, ...]:
        def fail(problem: StoreProblem, detail: str) -> TrustStoreError:
            return TrustStoreError(detail, store_type=store_type, name=name, problem=problem)

        if not STORE_NAME_PATTERN.fullmatch(name) or name in (".", ".."):
            raise fail(
                StoreProblem.INVALID_NAME,
                f"trust store name needs to follow [a-zA-Z0-9_.-]+ format, {go_quote(name)} is "
                "invalid",
            )
        path = self.store_path(store_type, name)
        try:
            info = path.lstat()
        except FileNotFoundError as exc:
            raise fail(
                StoreProblem.NOT_FOUND,
                f'the trust store "{name}" of type "{store_type}" does not exist',
            ) from exc
        except OSError as exc:
            raise fail(
                StoreProblem.UNREADABLE,
                f'failed to access the trust store "{name}" of type "{store_type}": {exc}',
            ) from exc
        if self.allow_symlinks:
            # Any symlink on the way (the store itself or ``truststore -> ..data/truststore``)
            # must resolve inside the trust directory.
            if not self._inside(path):
                raise fail(
                    StoreProblem.OUTSIDE_TRUST_DIR,
                    f"the trust store {name} of type {store_type} with path {path} resolves "
                    "outside the trust directory",
                )
            info = path.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise fail(
                StoreProblem.NOT_DIRECTORY,
                f"the trust store {name} of type {store_type} with path {path} is not a regular "
                "directory (symlinks are not supported)",
            )
        try:
            entries = sorted(os.listdir(path))
        except OSError as exc:
            raise fail(
                StoreProblem.UNREADABLE,
                f'failed to access the trust store "{name}" of type "{store_type}": {exc}',
            ) from exc
        read: list[StoreEntry] = []
        for entry in entries:
            loaded = self._read_entry(path / entry, store_type, name, fail)
            if loaded is not None:
                read.append(loaded)
        if not any(entry.certs for entry in read):
            raise fail(
                StoreProblem.EMPTY,
                f'no x509 certificates were found in trust store "{name}" of type "{store_type}"',
            )
        return tuple(read)

    def _read_entry(
        self,
        file: Path,
        store_type: StoreType,
        name: str,
        fail: _Fail,
    ) -> StoreEntry | None:
        where = f"{file.name} in trust store {name} of type {store_type}"
        data = self._entry_bytes(file, store_type, name, fail)
        if data is None:
            return None
        try:
            certs = parse_certificates(data)
        except X509_DECODE_ERRORS as exc:
            raise fail(
                StoreProblem.BAD_CERTIFICATE, f"failed to read the trusted certificate {where}"
            ) from exc
        for cert in certs:
            try:
                self._check_entry_certificate(cert, store_type, where, fail)
            except X509_DECODE_ERRORS as exc:
                raise fail(
                    StoreProblem.BAD_CERTIFICATE,
                    f"failed to read the trusted certificate {where}: {exc}",
                ) from exc
        return StoreEntry(path=file, sha256=hashlib.sha256(data).hexdigest(), certs=tuple(certs))

    def _entry_bytes(
        self, file: Path, store_type: StoreType, name: str, fail: _Fail
    ) -> bytes | None:
        """The bytes of one store entry, by the symlink and regular-file rules (None: skipped)."""
        where = f"{file.name} in trust store {name} of type {store_type}"
        not_regular = (
            f"trusted certificate {where} is not a regular file (directories or symlinks are "
            "not supported)"
        )
        try:
            info = file.lstat()
            if stat.S_ISLNK(info.st_mode) and self.allow_symlinks:
                if file.name.startswith(_KUBELET_PREFIX):
                    return None
                if not self._inside(file):
                    raise fail(StoreProblem.OUTSIDE_TRUST_DIR, f"{not_regular}: leaves trust dir")
                info = file.stat()
            elif self.allow_symlinks and file.name.startswith(_KUBELET_PREFIX):
                return None
            if not stat.S_ISREG(info.st_mode):
                raise fail(StoreProblem.ENTRY_NOT_REGULAR, not_regular)
            return file.read_bytes()
        except OSError as exc:
            raise fail(
                StoreProblem.UNREADABLE, f"failed to read the trusted certificate {where}: {exc}"
            ) from exc

    @staticmethod
    def _check_entry_certificate(
        cert: x509.Certificate, store_type: StoreType, where: str, fail: _Fail
    ) -> None:
        """The trust store rules for one certificate of an entry.

        ``cryptography`` parses names and extensions only when they are first read, so both are
        read here first: a certificate whose extensions cannot be read (a duplicate, a value that
        does not parse) is refused with the store, instead of failing later in the middle of a
        verification.

        Raises:
            TrustStoreError: a broken rule.
            ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension: undecodable.
        """
        _ = cert.subject, cert.issuer, cert.extensions
        if not is_ca(cert) and not self_signature_ok(cert, allow_sha1=True):
            raise fail(
                StoreProblem.NOT_CA_OR_SELF_SIGNED,
                f"failed to validate the trusted certificate {where}: certificate with "
                f"subject {go_quote(go_name_string(cert.subject))} is not a CA certificate or "
                "self-signed signing certificate",
            )
        if store_type is StoreType.TSA:
            why = root_ca_error(cert)
            if why is not None:
                raise fail(
                    StoreProblem.TSA_NOT_ROOT,
                    f"trusted certificate {where} is invalid: certificate with subject "
                    f"{go_quote(go_name_string(cert.subject))} is not a root CA certificate: "
                    f"{why}",
                )
