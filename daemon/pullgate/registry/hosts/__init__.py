"""containerd ``certs.d`` / ``hosts.toml``, read exactly as containerd 2.x reads it.

Implements containerd's ``docs/hosts.md`` as observed in ``core/remotes/docker/config/hosts.go``
(docs/containerd.md §1.2-§1.7): directory lookup (``HostDirFromRoot``), loading one
directory (``loadHostDir``, including the docker-style ``*.crt``/``*.cert``/``*.key`` fallback),
every ``hosts.toml`` key with every accepted type, the endpoint order (including the 2.x
table-header scan and its quirks), the derived upstream, URL/path rules, request URLs with the
``ns`` parameter, and the per-operation capability filter.

Semantics are those of containerd **2.2+** (``referrers`` capability known, default
capabilities include it). Differences from 1.6/1.7 (and 2.0/2.1) are listed in
:data:`CONTAINERD_1X_DIFFERENCES`.

Turning the entries into endpoints and using them (request URLs, the capability filter) is
:mod:`pullgate.registry.hosts.endpoints`; its public names are re-exported here.

Where containerd silently ignores a broken ``hosts.toml`` and falls back to docker-style mode,
so does pullgate, but it records why in :attr:`HostsConfig.problems` and logs it at error level.
Where containerd fails the pull before contacting any endpoint (a host directory or file that
exists but cannot be read), :func:`load_hosts` raises :class:`HostsDirectoryError`.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from pullgate.errors import MalformedInput, PullgateError, Reason
from pullgate.registry.go_semantics import go_clean
from pullgate.registry.hosts import syntax as syntax
from pullgate.registry.hosts.endpoints import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    REQUEST_KINDS,
    build_endpoints,
    filter_endpoints,
    request_url,
)
from pullgate.registry.hosts.syntax import HostEntry
from pullgate.registry.model import (
    ClientCertificate,
    Endpoint,
    HostsConfig,
)

__all__ = [
    "CONTAINERD_1X_DIFFERENCES",
    "DEFAULT_HOST_DIR",
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "HOSTS_FILE",
    "REQUEST_KINDS",
    "HostsDirectoryError",
    "filter_endpoints",
    "host_directories",
    "load_hosts",
    "request_url",
]

_LOG = logging.getLogger(__name__)

HOSTS_FILE = "hosts.toml"
DEFAULT_HOST_DIR = "_default"

CONTAINERD_1X_DIFFERENCES: tuple[str, ...] = (
    '1.6.x and 1.7.0-1.7.31 reject a hosts.toml without any [host."…"] table '
    "('invalid `host` tree'): the whole file is ignored (docker-style fallback); fixed in "
    "1.7.32 and every 2.x. Always write at least one [host] table.",
    "1.6/1.7 order [host] entries by the line of each host table (go-toml v1); the 2.x "
    "header-scan quirks (inline/dotted host definitions dropped, A,B,A duplication when "
    '[host."A".header] follows [host."B"]) do not apply there.',
    "The 'referrers' capability exists only from 2.2.0; on 1.6/1.7/2.0/2.1 it is an unknown "
    "capability and the whole file is ignored. Before 2.2 the default capability set is "
    "pull+resolve+push.",
    "dial_timeout is honoured from 2.1.0; earlier versions silently ignore the key.",
    "Default upstream for localhost/loopback registries: 1.6.x uses plain http with "
    "skip_verify and never tries HTTPS; 1.7.16+ and 2.x use https for no port or :443, http "
    "for :80, and 'HTTPS first, then HTTP' for any other port.",
    "An http:// endpoint with ca/client/skip_verify set stays plain HTTP on 1.6 (and 1.7 "
    "before 1.7.16); 2.x tries HTTPS first and falls back to HTTP.",
    "[header] values are also sent on token (auth realm) requests only from 2.1.0.",
    "containerd < 2.3 has no response-header timeout: a mirror that accepts the connection "
    "and never answers stalls the pull.",
    "2.1+ CRI on the transfer-service path ignores a ':'-separated config_path list "
    "(the Linux default) entirely; multi-root lookup works only on the local-pull path.",
    "Log text for an ignored file: 'failed to decode hosts.toml' (1.6) vs "
    "'failed to decode <full path>' (2.x).",
)


class HostsDirectoryError(PullgateError):
    """A certs.d entry exists but cannot be read: containerd fails the pull at this point.

    ``CONFIG`` is definitive: a retry reads the same directory, and ``on_inconclusive = "allow"``
    must not open a pull whose endpoints and TLS settings pullgate could not read.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.CONFIG, detail)


# --------------------------------------------------------------------------- directory lookup


def _candidates(registry: str) -> tuple[str, ...]:
    colon = registry.rfind(":")
    mangled = f"{registry[:colon]}_{registry[colon + 1 :]}_" if colon > 0 else registry
    names = (mangled,) if mangled != registry else ()
    return (*names, registry, DEFAULT_HOST_DIR)


def _check_registry(registry: str) -> None:
    untrusted: object = registry
    if (
        not isinstance(untrusted, str)
        or not registry
        or registry in {".", ".."}
        or any(c in registry for c in "/\\\0")
    ):
        raise MalformedInput(f"not a registry host name: {registry!r}")


def host_directories(registry: str, roots: Sequence[Path]) -> Path | None:
    """Find the certs.d directory containerd would use for ``registry`` (§1.2).

    Per root, in order: ``<host>_<port>_`` (split at the last colon, only when there is one),
    the literal ``<host:port>``, then ``_default``. The first path that ``stat`` succeeds on
    wins (any kind of entry); roots are tried in order, so an earlier root's ``_default``
    shadows a later root's host directory.

    Args:
        registry: the reference's registry host (``docker.io``, ``[::1]:5000``).
        roots: certs.d roots in ``config_path`` order.

    Returns:
        The directory, or None when no root has a candidate.

    Raises:
        MalformedInput: ``registry`` cannot be a host name.
        HostsDirectoryError: a candidate exists but ``stat`` fails (e.g. EACCES).
    """
    _check_registry(registry)
    for root in roots:
        for name in _candidates(registry):
            candidate = Path(go_clean(f"{root}/{name}"))
            try:
                os.stat(candidate)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                raise HostsDirectoryError(f"cannot stat {candidate}: {exc}") from exc
            return candidate
    return None


# --------------------------------------------------------------------------- loading


def load_hosts(registry: str, roots: Sequence[Path]) -> HostsConfig:
    """Everything containerd would use to reach ``registry``, in order (§1.3-§1.5, §1.8).

    Args:
        registry: the reference's registry host.
        roots: certs.d roots, in order (an empty sequence means "no config_path").

    Returns:
        The endpoints (mirrors first, upstream last) and any problems found.

    Raises:
        MalformedInput: ``registry`` cannot be a host name.
        HostsDirectoryError: a directory or file exists but cannot be read.
    """
    directory = host_directories(registry, roots)
    problems: list[str] = []
    hosts: list[HostEntry] | None = None
    source = "none"
    if directory is not None:
        source = "docker-style"
        data = _read_hosts_file(directory)
        if data:
            toml_path = directory / HOSTS_FILE
            hosts, errors = syntax.parse_hosts_file(directory, data)
            if hosts is not None:
                source = "hosts.toml"
            for err in errors:
                problem = (
                    f"{toml_path}: {err} (containerd logs 'failed to decode {toml_path}', "
                    "ignores the whole file and uses docker-style certificates)"
                )
                _LOG.error("hosts.toml ignored: %s", problem)
                problems.append(problem)
        if hosts is None:
            hosts = [_docker_style(directory, problems)]
    endpoints = build_endpoints(registry, hosts or [HostEntry()])
    problems.extend(_file_problems(endpoints, hosts or []))
    return HostsConfig(
        registry=registry,
        directory=directory,
        source=source,
        endpoints=endpoints,
        problems=tuple(problems),
    )


def _read_hosts_file(directory: Path) -> bytes:
    try:
        return (directory / HOSTS_FILE).read_bytes()
    except FileNotFoundError:
        return b""
    except (OSError, ValueError) as exc:
        raise HostsDirectoryError(f"cannot read {directory / HOSTS_FILE}: {exc}") from exc


def _docker_style(directory: Path, problems: list[str]) -> HostEntry:
    """containerd's ``loadCertFiles``: ``*.crt`` CAs, ``*.cert`` (+ ``.key``) clients."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return HostEntry()
    except (OSError, ValueError) as exc:
        raise HostsDirectoryError(f"cannot list {directory}: {exc}") from exc
    cas: list[Path] = []
    clients: list[ClientCertificate] = []
    names = set()
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            continue
        names.add(entry.name)
        if entry.name.endswith(".crt"):
            cas.append(directory / entry.name)
        if entry.name.endswith(".cert"):
            key = directory / (entry.name[: -len(".cert")] + ".key")
            try:
                os.stat(key)
            except FileNotFoundError:
                clients.append(ClientCertificate(cert=directory / entry.name))
                continue
            except (OSError, ValueError) as exc:
                raise HostsDirectoryError(f"cannot stat {key}: {exc}") from exc
            clients.append(ClientCertificate(cert=directory / entry.name, key=key))
    for name in sorted(names):
        if name.endswith(".key") and f"{name[: -len('.key')]}.cert" not in names:
            problems.append(f"{directory / name}: lone .key without a matching .cert; ignored")
    return HostEntry(ca_files=tuple(cas) or None, clients=tuple(clients) or None)


def _unreadable(path: Path) -> str | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return reason or "unreadable"
    if stat.S_ISDIR(st.st_mode):
        return os.strerror(errno.EISDIR)
    if not os.access(path, os.R_OK):
        return os.strerror(errno.EACCES)
    return None


def _file_problems(endpoints: Sequence[Endpoint], hosts: Sequence[HostEntry]) -> list[str]:
    problems: list[str] = []
    for endpoint in endpoints:
        label = f"endpoint {endpoint.url}"
        if not endpoint.host or endpoint.scheme not in {"http", "https"}:
            problems.append(
                f"{label}: no usable scheme/host (a scheme-less name starting with 'http' is "
                "not prefixed with https://); containerd fails every request to it"
            )
        for ca in endpoint.ca_files:
            if (why := _unreadable(ca)) is not None:
                problems.append(f"{label}: CA file {ca}: {why}; containerd fails the pull")
        for client in endpoint.client_certificates:
            for part in (client.cert, client.key):
                if part is not None and (why := _unreadable(part)) is not None:
                    problems.append(
                        f"{label}: client certificate file {part}: {why}; containerd fails the pull"
                    )
    for h in hosts:
        for cert in h.empty_key:
            problems.append(
                f'client pair [{cert!r}, ""]: containerd joins the empty key path to the '
                "host directory, so it reads the directory as the key and fails the pull; "
                "use the one-string form for a combined cert+key PEM"
            )
    for problem in problems:
        _LOG.error("certs.d problem: %s", problem)
    return problems
