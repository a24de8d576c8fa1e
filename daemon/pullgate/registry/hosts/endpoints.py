"""From ``hosts.toml`` entries to endpoints, and using the endpoints (containerd 2.x rules).

Implements docs/containerd.md §1.5-§1.7 on entries already read by
:mod:`pullgate.registry.hosts`: containerd's ``ConfigureHosts`` loop (:func:`build_endpoints`:
the derived upstream when the last entry names no host, and HTTPS-first for ``http://``
endpoints with TLS settings), the request URL of one registry operation with the ``ns``
parameter (:func:`request_url`), and the per-operation capability filter
(:func:`filter_endpoints`).

Deliberate deviations, documented where they happen: the reported API root path is
``path.Clean``-ed (``https://m/`` shows ``/v2``, containerd keeps ``//v2`` internally; request
URLs are identical), and :func:`filter_endpoints` drops endpoints whose URL has no usable
scheme/host (containerd tries them and fails at once with "unsupported protocol scheme").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, quote_plus

from pullgate.errors import MalformedInput
from pullgate.registry.go_semantics import PATH_SAFE, go_clean, is_localhost, split_host_port
from pullgate.registry.hosts.syntax import HostEntry
from pullgate.registry.model import (
    ALL_CAPABILITIES,
    Capability,
    Endpoint,
    HostsConfig,
    ImageReference,
)

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
REQUEST_KINDS = frozenset({"manifests", "blobs", "referrers", "tags"})


def _split_port(hostport: str) -> str:
    """The port of ``host:port`` as Go's ``net.SplitHostPort`` sees it ("" on error)."""
    split = split_host_port(hostport)
    return "" if split is None else split[1]


def _derive_upstream(registry: str, last: HostEntry) -> HostEntry:
    """Fill in the upstream when the last entry has no host (§1.5 step 3, 2.x rules)."""
    skip_verify = last.skip_verify
    if registry == DOCKER_HUB:
        scheme, host = "https", DOCKER_HUB_API
    elif is_localhost(registry):
        port = _split_port(registry)
        scheme, host = ("https" if port in {"", "443"} else "http"), registry
        if port != "80":
            skip_verify = True
    else:
        scheme, host = "https", registry
    return HostEntry(
        scheme=scheme,
        host=host,
        path="/v2",
        capabilities=ALL_CAPABILITIES,
        ca_files=last.ca_files,
        clients=last.clients,
        skip_verify=skip_verify,
        headers=last.headers,
        dial_timeout=last.dial_timeout,
        empty_key=last.empty_key,
    )


def build_endpoints(registry: str, hosts: Sequence[HostEntry]) -> tuple[Endpoint, ...]:
    """containerd's ``ConfigureHosts`` loop: derived upstream and HTTPS-first conversion."""
    entries = list(hosts)
    if entries[-1].host == "":
        entries[-1] = _derive_upstream(registry, entries[-1])
    out: list[Endpoint] = []
    for index, h in enumerate(entries):
        explicit_tls = h.ca_files is not None or h.clients is not None or h.skip_verify is not None
        scheme, https_then_http = h.scheme, False
        if scheme == "http" and explicit_tls and _split_port(h.host) != "80":
            scheme, https_then_http = "https", True
        path = go_clean(h.path) if h.path else ""
        out.append(
            Endpoint(
                url=f"{scheme}://{h.host}{path}",
                scheme=scheme,
                host=h.host,
                path=path,
                capabilities=h.capabilities,
                ca_files=h.ca_files or (),
                client_certificates=h.clients or (),
                skip_verify=bool(h.skip_verify),
                headers=dict(h.headers or {}),
                dial_timeout=h.dial_timeout,
                is_server=index == len(entries) - 1,
                https_then_http=https_then_http,
            )
        )
    return tuple(out)


def _is_proxy(endpoint_host: str, registry: str) -> bool:
    if endpoint_host == registry:
        return False
    return not (registry == DOCKER_HUB and endpoint_host == DOCKER_HUB_API)


def request_url(
    endpoint: Endpoint,
    ref: ImageReference,
    kind: str,
    name: str,
    query: Mapping[str, str] | None = None,
) -> str:
    """The URL containerd would request for ``kind``/``name`` of ``ref`` on ``endpoint`` (§1.6).

    Path = clean join of ``/``, the endpoint's API root, the repository, ``kind`` and ``name``.
    ``ns=<registry>`` is added when the endpoint host differs from the reference's registry
    (``registry-1.docker.io`` counts as ``docker.io``). Query parameters are encoded sorted by
    key, as Go's ``url.Values.Encode`` does.

    Args:
        endpoint: one endpoint from :func:`load_hosts`.
        ref: the image reference.
        kind: ``manifests``, ``blobs``, ``referrers`` or ``tags``.
        name: tag or digest (``list`` for ``tags``).
        query: extra query parameters (e.g. ``artifactType``).

    Returns:
        The absolute URL.

    Raises:
        MalformedInput: unknown ``kind`` or a ``name`` that is not one path segment.
    """
    if kind not in REQUEST_KINDS:
        raise MalformedInput(f"unknown registry request kind {kind!r}")
    if (
        not name
        or name in {".", ".."}
        or any(c in name for c in "/?#%")
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in name)
    ):
        raise MalformedInput(f"not a tag or digest: {name!r}")
    path = go_clean("/".join(p for p in ("/", endpoint.path, ref.repository, kind, name)))
    url = f"{endpoint.scheme}://{endpoint.host}{quote(path, safe=PATH_SAFE)}"
    params = dict(query or {})
    if _is_proxy(endpoint.host, ref.registry):
        params["ns"] = ref.registry
    if params:
        url += "?" + "&".join(
            f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(params.items())
        )
    return url


def filter_endpoints(config: HostsConfig, capability: Capability) -> tuple[Endpoint, ...]:
    """Endpoints usable for one operation, in order (§1.7).

    * ``RESOLVE`` (resolving a tag): endpoints with ``pull`` **and** ``resolve``.
    * ``PULL`` (by-digest manifest/blob fetches, resolving a digest reference): ``pull``.
    * ``PUSH``: ``push``.
    * ``REFERRERS``: endpoints with ``pull`` and ``referrers``. If none has both, the
      ``pull``+``resolve`` endpoints, as containerd 2.2+ falls back to resolve-capable hosts;
      an endpoint in the result that lacks ``referrers`` must be queried with the tag-schema
      fallback (``sha256-<hex>``) only, never the referrers API. containerd 2.2 itself checks
      only the ``referrers`` bit; pullgate also requires ``pull`` because it fetches the
      signature manifests and blobs from the same endpoint.

    Endpoints whose URL has no usable scheme/host are left out (containerd would try them and
    fail immediately with a transport error, which moves on to the next endpoint anyway).

    Args:
        config: the loaded hosts configuration.
        capability: the operation's capability.

    Returns:
        The endpoints to try, first to last.
    """
    usable = [e for e in config.endpoints if e.host and e.scheme in {"http", "https"}]
    if capability is Capability.RESOLVE:
        need = {Capability.PULL, Capability.RESOLVE}
    elif capability is Capability.REFERRERS:
        found = [e for e in usable if {Capability.PULL, Capability.REFERRERS} <= e.capabilities]
        if found:
            return tuple(found)
        need = {Capability.PULL, Capability.RESOLVE}
    else:
        need = {capability}
    return tuple(e for e in usable if need <= e.capabilities)
