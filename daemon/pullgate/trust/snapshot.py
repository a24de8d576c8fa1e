"""One complete, validated configuration snapshot (docs/architecture.md §3.6).

A :class:`Snapshot` is everything a decision depends on, loaded and checked eagerly, so that a
snapshot either exists whole or not at all:

1. the daemon config (:func:`pullgate.config.parse_config`; without a file, ``base`` or the
   defaults);
2. the trust directory, judged as a whole by
   :func:`pullgate.verification.policy.check_trust_dir` (every problem of the policy documents
   and of every trust store any statement names; any problem makes the snapshot invalid);
3. the OCI trust policy and every referenced trust store, loaded into the snapshot's
   :class:`~pullgate.verification.truststore.TrustStore` (its cache then holds exactly the
   certificates that were validated);
4. the docker ``config.json`` named by ``[registry] config_json``, if any: its credentials are
   loaded here and kept in :attr:`Snapshot.docker`. Like the trust material, a missing,
   unreadable or malformed file makes the snapshot invalid (a reload keeps the last good
   snapshot and its credentials; at start-up nothing enforces until it is fixed), rather than
   a snapshot that denies every decision;
5. the certs.d roots: a broken ``hosts.toml`` is **not** fatal (containerd keeps pulling with
   docker-style certificates), so it is recorded in :attr:`Snapshot.problems` instead;
6. content hashes of the config file, the trust policy files, every trust-store file, the
   docker ``config.json`` and every file under the certs.d roots, and :attr:`Snapshot.digest`
   over all of them, which is part of every decision-cache key (and keys the decider's
   per-snapshot state, credentials included: a changed ``config.json`` is a new snapshot).

The trust hashes (``config.json`` included) are taken before and after loading; if the files
changed in between, loading is retried (a few times), so a digest never names content other
than what was loaded.

Symlinks and Kubernetes ConfigMap mounts: the trust policy and stores are read with
``config.verification.allow_symlinks`` (default on: links must resolve inside the trust dir).
Hashing follows symlinked directories and skips the kubelet's ``..``-prefixed entries; the
visible links (``file -> ..data/file``) carry the content, so a ``..data`` swap changes the
hashes.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from pullgate.common.clock import Clock
from pullgate.common.lru import Lru, LruStats
from pullgate.config import DaemonConfig, parse_config, read_config_file
from pullgate.errors import ConfigError, PullgateError
from pullgate.registry.auth import DockerConfigCredentials
from pullgate.registry.hosts import DEFAULT_HOST_DIR, load_hosts
from pullgate.registry.model import HostsConfig
from pullgate.trust.files import TrustConfig, dead_scope_warnings, load_trust_config
from pullgate.verification.cache import CertMemo
from pullgate.verification.policy import (
    BLOB_POLICY_FILE,
    LEGACY_POLICY_FILE,
    OCI_POLICY_FILE,
    check_trust_dir,
)

HASH_CONFIG = "config"
HASH_TRUST_POLICY = "trust_policy"
HASH_TRUST_STORES = "trust_stores"
HASH_CERTS_D = "certs_d"
HASH_REGISTRY_CONFIG = "registry_config"

_LOAD_ATTEMPTS = 3
_KUBELET_PREFIX = ".."
_MANGLED_HOST_DIR = re.compile(r"(.+)_(\d+)_")


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A complete, validated configuration: swapped in as one reference, never mutated.

    Attributes:
        generation: 1 for the first valid snapshot, +1 for every successful reload.
        config: the daemon configuration.
        trust: the trust policy and the (pre-loaded) trust store.
        hashes: sha256 hex of ``config``, ``trust_policy``, ``trust_stores``, ``certs_d`` and
            ``registry_config`` (the docker ``config.json``).
        digest: sha256 hex over all hashes; part of every decision-cache key.
        loaded_at: when the snapshot was built (the injected clock).
        certs_d_problems: the broken certs.d entries among :attr:`problems` (decisions use
            containerd's fallback for them: the file is ignored, docker-style certificates).
        problems: non-fatal problems (broken certs.d entries, config statements that name no
            trust-policy statement, registry scopes no reference can select).
        config_path: the config file it was read from, if any.
        docker: the credentials of ``[registry] config_json`` (None when it is not set).
        cert_memo: the certificate-check memos of verifications under this snapshot, sized
            from ``[cache] certificate_entries``; dropped with the snapshot, so a reload starts
            with empty ones (docs/decisions.md, "Certificate memos are per trust snapshot").
    """

    generation: int
    config: DaemonConfig
    trust: TrustConfig
    hashes: Mapping[str, str]
    digest: str
    loaded_at: datetime
    problems: tuple[str, ...] = ()
    certs_d_problems: tuple[str, ...] = ()
    config_path: Path | None = None
    docker: DockerConfigCredentials | None = None
    cert_memo: CertMemo = field(repr=False, compare=False)
    _hosts_cache: Lru[str, HostsConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts: Lru[str, HostsConfig] = Lru(self.config.cache.hosts_entries, name="certs.d hosts")
        object.__setattr__(self, "_hosts_cache", hosts)

    def cache_stats(self) -> tuple[LruStats, ...]:
        """Statistics of the snapshot's certs.d memo and certificate memos."""
        return (self._hosts_cache.stats(), *self.cert_memo.stats())

    def hosts(self, registry: str) -> HostsConfig:
        """The certs.d configuration containerd would use for ``registry``.

        Results are memoised per snapshot (an LRU of ``[cache] hosts_entries``): certs.d
        changes produce a new snapshot.

        Raises:
            MalformedInput: ``registry`` cannot be a host name.
            HostsDirectoryError: a certs.d entry exists but cannot be read.
        """
        cached = self._hosts_cache.get(registry)
        if cached is not None:
            return cached
        loaded = load_hosts(registry, self.config.hosts_dirs)
        self._hosts_cache.put(registry, loaded)
        return loaded


# ----------------------------------------------------------------------------- hashing


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file under ``root`` as (relative path, path), sorted, following directory links.

    Skips ``..``-prefixed entries (the kubelet's ``..data`` and timestamped directories) and
    never visits one real directory twice (symlink loops).
    """
    seen: set[str] = set()

    def visit(directory: Path, rel: str) -> Iterator[tuple[str, Path]]:
        try:
            real = os.path.realpath(directory)
            if real in seen:
                return
            seen.add(real)
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            if name.startswith(_KUBELET_PREFIX):
                continue
            path = directory / name
            child = f"{rel}/{name}" if rel else name
            if path.is_dir():
                yield from visit(path, child)
            else:
                yield child, path

    yield from visit(root, "")


def _hash_entry(hasher: hashlib._Hash, rel: str, path: Path) -> None:
    hasher.update(rel.encode("utf-8", "surrogateescape") + b"\0")
    try:
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    except OSError as exc:
        hasher.update(f"unreadable:{exc.errno}".encode())


def _tree_hash(roots: Sequence[Path]) -> str:
    hasher = hashlib.sha256()
    for index, root in enumerate(roots):
        hasher.update(f"root {index} {root}\0".encode("utf-8", "surrogateescape"))
        if not root.is_dir():
            hasher.update(b"absent\0")
            continue
        for rel, path in _walk_files(root):
            _hash_entry(hasher, rel, path)
    return hasher.hexdigest()


def _policy_hash(trust_dir: Path) -> str:
    hasher = hashlib.sha256()
    for name in (OCI_POLICY_FILE, LEGACY_POLICY_FILE, BLOB_POLICY_FILE):
        path = trust_dir / name
        if os.path.lexists(path):
            _hash_entry(hasher, name, path)
    return hasher.hexdigest()


def _registry_config_hash(path: Path | None) -> str:
    hasher = hashlib.sha256()
    if path is None:
        hasher.update(b"unset\0")
    else:
        _hash_entry(hasher, str(path), path)
    return hasher.hexdigest()


def _trust_hashes(config: DaemonConfig) -> dict[str, str]:
    return {
        HASH_TRUST_POLICY: _policy_hash(config.trust_dir),
        HASH_TRUST_STORES: _tree_hash((config.trust_dir / "truststore",)),
        HASH_CERTS_D: _tree_hash(config.hosts_dirs),
        HASH_REGISTRY_CONFIG: _registry_config_hash(config.registry.config_json),
    }


def combined_digest(hashes: Mapping[str, str]) -> str:
    """sha256 hex over ``key=value`` lines of ``hashes``, in key order."""
    text = "".join(f"{key}={hashes[key]}\n" for key in sorted(hashes))
    return hashlib.sha256(text.encode()).hexdigest()


def disk_digest(config_path: Path | None, *, base: DaemonConfig | None = None) -> str:
    """The :attr:`Snapshot.digest` a snapshot built from the files as they are now would carry
    (hashes only: nothing but the config file is parsed, nothing is validated).

    Raises:
        ConfigError: the config file is unusable.
    """
    config, config_hash = _read_config(config_path, base)
    return combined_digest({HASH_CONFIG: config_hash, **_trust_hashes(config)})


# ----------------------------------------------------------------------------- loading


def _load_trust(config: DaemonConfig) -> TrustConfig:
    """Validate the trust dir as a whole, then load the policy and every referenced store.

    Raises:
        ConfigError: listing every problem found.
    """
    trust_dir = config.trust_dir
    allow_symlinks = config.verification.allow_symlinks
    problems = check_trust_dir(trust_dir, allow_symlinks=allow_symlinks)
    if problems:
        raise ConfigError(
            f"trust directory {trust_dir} is unusable: " + "; ".join(problems), tuple(problems)
        )
    trust = load_trust_config(trust_dir, allow_symlinks=allow_symlinks)
    for statement in trust.oci_policy.statements:  # eagerly: a snapshot is whole or not at all
        trust.store.load_many(statement.trust_stores)
    return trust


def _load_docker(config: DaemonConfig) -> DockerConfigCredentials | None:
    """The credentials of ``[registry] config_json`` (None when it is not set).

    Raises:
        ConfigError: the file is missing, unreadable or malformed.
    """
    path = config.registry.config_json
    if path is None:
        return None
    try:
        return DockerConfigCredentials.from_file(path)
    except PullgateError as exc:
        detail = f"[registry] config_json is unusable: {exc.detail}"
        raise ConfigError(detail, (detail,)) from exc


def _registry_for(directory_name: str) -> str:
    match = _MANGLED_HOST_DIR.fullmatch(directory_name)
    return f"{match.group(1)}:{match.group(2)}" if match else directory_name


def _certs_d_problems(roots: Sequence[Path]) -> list[str]:
    """Problems of every host directory under every certs.d root (never fatal)."""
    problems: list[str] = []
    for root in roots:
        if not os.path.lexists(root):
            continue
        if not root.is_dir():
            problems.append(f"{root}: certs.d root is not a directory")
            continue
        try:
            names = sorted(os.listdir(root))
        except OSError as exc:
            problems.append(f"{root}: cannot list certs.d root: {exc.strerror or exc}")
            continue
        for name in names:
            if name.startswith(_KUBELET_PREFIX) or not (root / name).is_dir():
                continue
            registry = _registry_for(name)
            try:
                problems.extend(load_hosts(registry, (root,)).problems)
            except PullgateError as exc:
                where = "default" if name == DEFAULT_HOST_DIR else registry
                problems.append(f"{root / name}: certs.d entry for {where}: {exc}")
    return problems


def _statement_problems(config: DaemonConfig, trust: TrustConfig) -> list[str]:
    names = {statement.name for statement in trust.oci_policy.statements}
    where = config.source or "config"
    return [
        f'{where}: statements."{name}": no trust-policy statement of that name in '
        f"{trust.oci_policy.source}; the settings are unused"
        for name in config.statements
        if name not in names
    ]


def _read_config(config_path: Path | None, base: DaemonConfig | None) -> tuple[DaemonConfig, str]:
    if config_path is None:
        config = base or DaemonConfig()
        return config, hashlib.sha256(repr(config).encode()).hexdigest()
    data = read_config_file(config_path)
    return parse_config(data, config_path), hashlib.sha256(data).hexdigest()


def build_snapshot(
    config_path: Path | None,
    generation: int,
    *,
    clock: Clock,
    base: DaemonConfig | None = None,
) -> Snapshot:
    """Load and validate everything, eagerly, into a new :class:`Snapshot`.

    Args:
        config_path: the daemon config file; None uses ``base`` (or the defaults).
        generation: the generation the snapshot will carry.
        clock: source of :attr:`Snapshot.loaded_at`.
        base: the configuration to use when there is no file.

    Returns:
        The snapshot; non-fatal certs.d problems are in :attr:`Snapshot.problems`.

    Raises:
        ConfigError: the config file, the trust directory or the docker ``config.json`` is
            unusable (``problems`` lists every problem), or the trust material kept changing
            while it was loaded.
    """
    config, config_hash = _read_config(config_path, base)
    for _attempt in range(_LOAD_ATTEMPTS):
        before = _trust_hashes(config)
        trust = _load_trust(config)
        docker = _load_docker(config)
        after = _trust_hashes(config)
        if before == after:
            break
    else:
        detail = f"trust material under {config.trust_dir} kept changing while it was loaded"
        raise ConfigError(detail, (detail,))
    hashes = {HASH_CONFIG: config_hash, **after}
    certs_d = _certs_d_problems(config.hosts_dirs)
    problems = certs_d + _statement_problems(config, trust)
    problems += dead_scope_warnings(trust.oci_policy)
    return Snapshot(
        generation=generation,
        config=config,
        trust=trust,
        hashes=MappingProxyType(hashes),
        digest=combined_digest(hashes),
        loaded_at=clock.now(),
        problems=tuple(problems),
        certs_d_problems=tuple(certs_d),
        config_path=config_path,
        docker=docker,
        cert_memo=CertMemo(config.cache.certificate_entries),
    )
