"""certs.d / hosts.toml exactly as containerd 2.x reads them (registry/hosts: load, report).

The core is a table of certs.d layouts built in ``tmp_path``. For each one the test asserts the
exact endpoint list that ``pullgate hosts`` reports (``hosts_json``): order, URL, capabilities,
CA files, client certificate/key pairs, skip_verify, HTTPS-first, headers and dial timeout, plus
the chosen directory, the source, and whether problems were recorded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pullgate.errors import MalformedInput, PullgateError, Reason
from pullgate.registry.hosts import (
    CONTAINERD_1X_DIFFERENCES,
    HostsDirectoryError,
    filter_endpoints,
    host_directories,
    load_hosts,
    request_url,
)
from pullgate.registry.hosts.report import REDACTED, hosts_json, render_hosts
from pullgate.registry.hosts.syntax import go_duration, go_url, table_header_hosts
from pullgate.registry.model import Capability, Endpoint
from pullgate.registry.reference import parse_reference

ALL = "pull,resolve,push,referrers"
PR = "pull,resolve"
HUB = "https://registry-1.docker.io/v2"
PEM = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"


@dataclass(frozen=True, kw_only=True)
class Ep:
    """Expected endpoint; paths use ``{d}`` for the tmp directory."""

    url: str
    caps: str = ALL
    ca: tuple[str, ...] = ()
    client: tuple[tuple[str, str | None], ...] = ()
    skip_verify: bool = False
    https_then_http: bool = False
    headers: dict[str, list[str]] = field(default_factory=dict)
    dial_timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class Layout:
    id: str
    files: dict[str, str | None]  # relative path -> content (None = directory)
    expect: tuple[Ep, ...]
    registry: str = "docker.io"
    roots: tuple[str, ...] = ("certs.d",)
    directory: str | None = "certs.d/docker.io"
    source: str = "hosts.toml"
    problems: bool = False


def _ep_json(order: int, ep: Ep, d: str, last: bool) -> dict[str, Any]:
    return {
        "order": order,
        "url": ep.url,
        "server": last,
        "capabilities": ep.caps.split(",") if ep.caps else [],
        "ca": [c.format(d=d) for c in ep.ca],
        "client": [
            {"cert": c.format(d=d), "key": None if k is None else k.format(d=d)}
            for c, k in ep.client
        ],
        "skip_verify": ep.skip_verify,
        "https_then_http": ep.https_then_http,
        "headers": ep.headers,
        "dial_timeout": ep.dial_timeout,
    }


LAYOUTS = [
    Layout(id="no-directory", files={}, expect=(Ep(url=HUB),), directory=None, source="none"),
    Layout(
        id="host-dir-beats-default",
        files={
            "certs.d/docker.io/hosts.toml": 'server = "https://hub-a.example"\n'
            '[host."https://hub-a.example"]\n',
            "certs.d/_default/hosts.toml": 'server = "https://default.example"\n',
        },
        expect=(Ep(url="https://hub-a.example/v2"), Ep(url="https://hub-a.example/v2")),
    ),
    Layout(
        id="host-port-underscore-beats-literal",
        registry="myreg.example:5000",
        files={
            "certs.d/myreg.example_5000_/hosts.toml": '[host."https://underscore.example"]\n',
            "certs.d/myreg.example:5000/hosts.toml": '[host."https://literal.example"]\n',
        },
        directory="certs.d/myreg.example_5000_",
        expect=(Ep(url="https://underscore.example/v2"), Ep(url="https://myreg.example:5000/v2")),
    ),
    Layout(
        id="literal-host-port-when-no-underscore-dir",
        registry="myreg.example:5000",
        files={"certs.d/myreg.example:5000/hosts.toml": '[host."https://literal.example"]\n'},
        directory="certs.d/myreg.example:5000",
        expect=(Ep(url="https://literal.example/v2"), Ep(url="https://myreg.example:5000/v2")),
    ),
    Layout(
        id="earlier-root-default-shadows-later-root-host-dir",
        roots=("r1", "r2"),
        files={
            "r1/_default/hosts.toml": '[host."https://from-default.example"]\n',
            "r2/docker.io/hosts.toml": '[host."https://from-host-dir.example"]\n',
        },
        directory="r1/_default",
        expect=(Ep(url="https://from-default.example/v2"), Ep(url=HUB)),
    ),
    Layout(
        id="later-root-used-when-earlier-has-nothing",
        roots=("r1", "r2"),
        files={"r1": None, "r2/docker.io/hosts.toml": '[host."https://m.example"]\n'},
        directory="r2/docker.io",
        expect=(Ep(url="https://m.example/v2"), Ep(url=HUB)),
    ),
    Layout(
        id="found-but-empty-dir-never-falls-through",
        files={
            "certs.d/docker.io/README": "nothing here\n",
            "certs.d/_default/hosts.toml": '[host."https://default.example"]\n',
        },
        source="docker-style",
        expect=(Ep(url=HUB),),
    ),
    Layout(
        id="inline-host-table-dropped",
        files={
            "certs.d/docker.io/hosts.toml": 'host."https://inline.example" = { capabilities = '
            '["pull"] }\n[host."https://m1.example"]\n  capabilities = ["pull", "resolve"]\n',
        },
        expect=(Ep(url="https://m1.example/v2", caps=PR), Ep(url=HUB)),
    ),
    Layout(
        id="dotted-host-keys-dropped-and-not-validated",
        files={
            "certs.d/docker.io/hosts.toml": '[host]\n"https://dotted.example".capabilities = '
            '["nonsense"]\n[host."https://m1.example"]\n  capabilities = ["pull", "resolve"]\n',
        },
        expect=(Ep(url="https://m1.example/v2", caps=PR), Ep(url=HUB)),
    ),
    Layout(
        id="A-B-A-header-table-quirk",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://a.example"]\n'
            '[host."https://b.example"]\n[host."https://a.example".header]\n  x-a = "1"\n',
        },
        expect=(
            Ep(url="https://a.example/v2", headers={"x-a": ["1"]}),
            Ep(url="https://b.example/v2"),
            Ep(url="https://a.example/v2", headers={"x-a": ["1"]}),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="v2-suffix-rules",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m1.example/"]\n'
            '[host."https://m2.example/v2"]\n[host."https://m3.example/prefix"]\n'
            '[host."https://m4.example/v2/x"]\n[host."https://m5.example/a/../b/./"]\n',
        },
        expect=(
            Ep(url="https://m1.example/v2"),
            Ep(url="https://m2.example/v2"),
            Ep(url="https://m3.example/prefix/v2"),
            Ep(url="https://m4.example/v2/x/v2"),
            Ep(url="https://m5.example/b/v2"),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="override-path",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m1.example/custom/api"]\n'
            "  override_path = true\n"
            '[host."https://m2.example"]\n  override_path = true\n',
        },
        expect=(
            Ep(url="https://m1.example/custom/api"),
            Ep(url="https://m2.example"),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="server-absent-forces-all-capabilities-but-keeps-root-tls",
        registry="myreg.example",
        files={
            "certs.d/myreg.example/hosts.toml": 'capabilities = ["pull"]\nca = "ca.pem"\n'
            'dial_timeout = "1.5s"\n[header]\n  x-root = ["a", "b"]\n',
            "certs.d/myreg.example/ca.pem": PEM,
        },
        directory="certs.d/myreg.example",
        expect=(
            Ep(
                url="https://myreg.example/v2",
                ca=("{d}/certs.d/myreg.example/ca.pem",),
                headers={"x-root": ["a", "b"]},
                dial_timeout=1.5,
            ),
        ),
    ),
    Layout(
        id="explicit-server-keeps-its-capabilities-and-prefix",
        registry="myreg.example",
        files={
            "certs.d/myreg.example/hosts.toml": 'server = "myreg.example:5000"\n'
            'capabilities = ["PULL", "Resolve"]\n',
        },
        directory="certs.d/myreg.example",
        expect=(Ep(url="https://myreg.example:5000/v2", caps=PR),),
    ),
    Layout(
        id="loopback-with-port-https-first-skip-verify",
        registry="localhost:5000",
        files={},
        directory=None,
        source="none",
        expect=(Ep(url="https://localhost:5000/v2", skip_verify=True, https_then_http=True),),
    ),
    Layout(
        id="loopback-no-port-https-skip-verify",
        registry="127.0.0.1",
        files={},
        directory=None,
        source="none",
        expect=(Ep(url="https://127.0.0.1/v2", skip_verify=True),),
    ),
    Layout(
        id="loopback-port-80-plain-http",
        registry="localhost:80",
        files={},
        directory=None,
        source="none",
        expect=(Ep(url="http://localhost:80/v2"),),
    ),
    Layout(
        id="ipv6-registry-dir",
        registry="[::1]:5000",
        files={"certs.d/[::1]_5000_/ca.crt": PEM},
        directory="certs.d/[::1]_5000_",
        source="docker-style",
        expect=(
            Ep(
                url="https://[::1]:5000/v2",
                ca=("{d}/certs.d/[::1]_5000_/ca.crt",),
                skip_verify=True,
                https_then_http=True,
            ),
        ),
    ),
    Layout(
        id="docker-style-certs",
        registry="myreg.example",
        files={
            "certs.d/myreg.example/b.crt": PEM,
            "certs.d/myreg.example/a.crt": PEM,
            "certs.d/myreg.example/client.cert": PEM,
            "certs.d/myreg.example/client.key": PEM,
            "certs.d/myreg.example/combined.cert": PEM,
            "certs.d/myreg.example/sub.crt/x": PEM,
            "certs.d/myreg.example/hosts.toml": "",
        },
        directory="certs.d/myreg.example",
        source="docker-style",
        expect=(
            Ep(
                url="https://myreg.example/v2",
                ca=("{d}/certs.d/myreg.example/a.crt", "{d}/certs.d/myreg.example/b.crt"),
                client=(
                    (
                        "{d}/certs.d/myreg.example/client.cert",
                        "{d}/certs.d/myreg.example/client.key",
                    ),
                    ("{d}/certs.d/myreg.example/combined.cert", None),
                ),
            ),
        ),
    ),
    Layout(
        id="docker-style-lone-key-is-a-problem",
        registry="myreg.example",
        files={"certs.d/myreg.example/lone.key": PEM},
        directory="certs.d/myreg.example",
        source="docker-style",
        problems=True,
        expect=(Ep(url="https://myreg.example/v2"),),
    ),
    Layout(
        id="all-client-forms",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://one.example"]\n'
            '  client = "both.pem"\n'
            '[host."https://list.example"]\n  client = ["c1.pem", "/abs/c2.pem"]\n'
            '[host."https://pairs.example"]\n'
            '  client = [["c.cert", "c.key"], "both.pem"]\n',
            "certs.d/docker.io/both.pem": PEM,
            "certs.d/docker.io/c1.pem": PEM,
            "certs.d/docker.io/c.cert": PEM,
            "certs.d/docker.io/c.key": PEM,
        },
        problems=True,  # /abs/c2.pem does not exist
        expect=(
            Ep(url="https://one.example/v2", client=(("{d}/certs.d/docker.io/both.pem", None),)),
            Ep(
                url="https://list.example/v2",
                client=(("{d}/certs.d/docker.io/c1.pem", None), ("/abs/c2.pem", None)),
            ),
            Ep(
                url="https://pairs.example/v2",
                client=(
                    ("{d}/certs.d/docker.io/c.cert", "{d}/certs.d/docker.io/c.key"),
                    ("{d}/certs.d/docker.io/both.pem", None),
                ),
            ),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="client-pair-with-empty-key-becomes-the-directory",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m.example"]\n'
            '  client = [["c.pem", ""]]\n',
            "certs.d/docker.io/c.pem": PEM,
        },
        problems=True,
        expect=(
            Ep(
                url="https://m.example/v2",
                client=(("{d}/certs.d/docker.io/c.pem", "{d}/certs.d/docker.io"),),
            ),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="header-arrays-and-redaction",
        files={
            "certs.d/docker.io/hosts.toml": '[host."http://127.0.0.1:5050"]\n'
            '  capabilities = ["pull", "resolve"]\n  dial_timeout = "200ms"\n'
            '  [host."http://127.0.0.1:5050".header]\n'
            '    Authorization = "Bearer s3cr3t"\n    X-Multi = ["v1", "v2"]\n',
        },
        expect=(
            Ep(
                url="http://127.0.0.1:5050/v2",
                caps=PR,
                headers={"Authorization": [REDACTED], "X-Multi": ["v1", "v2"]},
                dial_timeout=0.2,
            ),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="http-endpoint-with-tls-settings-tries-https-first-except-port-80",
        files={
            "certs.d/docker.io/hosts.toml": '[host."http://m.example:5000"]\n'
            "  skip_verify = false\n"
            '[host."http://m.example:80"]\n  skip_verify = true\n'
            '[host."http://plain.example:5000"]\n',
        },
        expect=(
            Ep(url="https://m.example:5000/v2", https_then_http=True),
            Ep(url="http://m.example:80/v2", skip_verify=True),
            Ep(url="http://plain.example:5000/v2"),
            Ep(url=HUB),
        ),
    ),
    Layout(
        id="relative-parent-paths",
        files={
            "certs.d/docker.io/hosts.toml": 'server = "https://registry-1.docker.io"\n'
            'ca = ["../shared/ca.pem", "./local.pem"]\n[host."https://m.example"]\n',
            "certs.d/shared/ca.pem": PEM,
            "certs.d/docker.io/local.pem": PEM,
        },
        expect=(
            Ep(url="https://m.example/v2"),
            Ep(url=HUB, ca=("{d}/certs.d/shared/ca.pem", "{d}/certs.d/docker.io/local.pem")),
        ),
    ),
    Layout(
        id="referrers-capability-accepted-2x",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m.example"]\n'
            '  capabilities = ["pull", "referrers"]\n',
        },
        expect=(Ep(url="https://m.example/v2", caps="pull,referrers"), Ep(url=HUB)),
    ),
    Layout(
        id="broken-toml-falls-back-to-docker-style",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m.example"\n  capabilities = [',
            "certs.d/docker.io/ca.crt": PEM,
        },
        source="docker-style",
        problems=True,
        expect=(Ep(url=HUB, ca=("{d}/certs.d/docker.io/ca.crt",)),),
    ),
    Layout(
        id="unknown-capability-falls-back",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m.example"]\n'
            '  capabilities = ["pull", "pul"]\n',
        },
        source="docker-style",
        problems=True,
        expect=(Ep(url=HUB),),
    ),
    Layout(
        id="bad-dial-timeout-falls-back",
        files={
            "certs.d/docker.io/hosts.toml": '[host."https://m.example"]\n  dial_timeout = "5"\n'
        },
        source="docker-style",
        problems=True,
        expect=(Ep(url=HUB),),
    ),
    Layout(
        id="wrong-types-fall-back",
        files={
            "certs.d/docker.io/hosts.toml": 'ca = 5\nskip_verify = "yes"\n'
            '[host."https://m.example"]\n'
        },
        source="docker-style",
        problems=True,
        expect=(Ep(url=HUB),),
    ),
    Layout(
        id="bad-url-falls-back",
        files={"certs.d/docker.io/hosts.toml": '[host."https://m.example:port"]\n'},
        source="docker-style",
        problems=True,
        expect=(Ep(url=HUB),),
    ),
    Layout(
        id="unknown-keys-ignored-case-insensitive-fields",
        files={
            "certs.d/docker.io/hosts.toml": 'capabilites = ["bogus"]\nSERVER = "https://up.example"\n'
            '[host."https://m.example"]\n  Skip_Verify = true\n',
        },
        expect=(
            Ep(url="https://m.example/v2", skip_verify=True),
            Ep(url="https://up.example/v2"),
        ),
    ),
    Layout(
        id="scheme-less-name-starting-with-http-has-no-host",
        files={"certs.d/docker.io/hosts.toml": '[host."httpcache.local:5000"]\n'},
        problems=True,
        expect=(Ep(url="httpcache.local:///v2"), Ep(url=HUB)),
    ),
]


def _build(root: Path, files: dict[str, str | None]) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


def test_at_least_twenty_layouts() -> None:
    assert len(LAYOUTS) >= 20
    assert len({layout.id for layout in LAYOUTS}) == len(LAYOUTS)


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout.id for layout in LAYOUTS])
def test_layout(layout: Layout, tmp_path: Path) -> None:
    _build(tmp_path, layout.files)
    config = load_hosts(layout.registry, [tmp_path / r for r in layout.roots])
    report = hosts_json(config)
    d = str(tmp_path)
    expected = [
        _ep_json(i, ep, d, i == len(layout.expect)) for i, ep in enumerate(layout.expect, start=1)
    ]
    # scheme/host/path are the URL split up; test_endpoint_fields_* checks them separately.
    got = [
        {k: v for k, v in e.items() if k not in {"scheme", "host", "path"}}
        for e in report["endpoints"]
    ]
    assert got == expected
    assert report["registry"] == layout.registry
    assert report["source"] == layout.source
    assert report["directory"] == (None if layout.directory is None else f"{d}/{layout.directory}")
    assert bool(report["problems"]) is layout.problems, report["problems"]
    json.dumps(report)  # JSON-ready
    text = render_hosts(config)
    for ep in expected:
        assert ep["url"] in text
    assert "s3cr3t" not in text
    assert "s3cr3t" not in json.dumps(report)


def test_secret_kept_in_config_but_not_in_report(tmp_path: Path) -> None:
    _build(
        tmp_path,
        {
            "c/docker.io/hosts.toml": '[host."https://m"]\n[host."https://m".header]\n'
            'authorization = "Basic abc"\n'
        },
    )
    config = load_hosts("docker.io", [tmp_path / "c"])
    assert config.endpoints[0].headers == {"authorization": ("Basic abc",)}
    assert hosts_json(config)["endpoints"][0]["headers"] == {"authorization": [REDACTED]}


def test_endpoint_fields_for_derived_upstream(tmp_path: Path) -> None:
    config = load_hosts("docker.io", [tmp_path])
    (upstream,) = config.endpoints
    assert (upstream.scheme, upstream.host, upstream.path) == (
        "https",
        "registry-1.docker.io",
        "/v2",
    )
    assert upstream.is_server


def test_ipv6_without_port_is_not_loopback(tmp_path: Path) -> None:
    (ep,) = load_hosts("[::1]", [tmp_path]).endpoints
    assert (ep.url, ep.skip_verify, ep.https_then_http) == ("https://[::1]/v2", False, False)


def test_regular_file_named_like_host_fails_like_containerd(tmp_path: Path) -> None:
    _build(tmp_path, {"c/docker.io": "not a dir"})
    assert host_directories("docker.io", [tmp_path / "c"]) == tmp_path / "c/docker.io"
    with pytest.raises(HostsDirectoryError) as info:
        load_hosts("docker.io", [tmp_path / "c"])
    assert info.value.reason is Reason.CONFIG


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unreadable_hosts_file_fails(tmp_path: Path) -> None:
    _build(tmp_path, {"c/docker.io/hosts.toml": '[host."https://m"]\n'})
    (tmp_path / "c/docker.io/hosts.toml").chmod(0)
    try:
        with pytest.raises(HostsDirectoryError):
            load_hosts("docker.io", [tmp_path / "c"])
    finally:
        (tmp_path / "c/docker.io/hosts.toml").chmod(0o644)


@pytest.mark.parametrize("registry", ["", ".", "..", "a/b", "a\0b"])
def test_bad_registry_name(registry: str, tmp_path: Path) -> None:
    with pytest.raises(MalformedInput):
        host_directories(registry, [tmp_path])


# --------------------------------------------------------------------------- request URLs


def _ep(url: str, host: str, path: str = "/v2", scheme: str = "https") -> Endpoint:
    return Endpoint(url=url, scheme=scheme, host=host, path=path)


@pytest.mark.parametrize(
    ("endpoint", "ref", "kind", "name", "expected"),
    [
        (
            _ep(HUB, "registry-1.docker.io"),
            "nginx",
            "manifests",
            "latest",
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest",
        ),
        (
            _ep("http://127.0.0.1:5050/v2", "127.0.0.1:5050", scheme="http"),
            "nginx",
            "manifests",
            "latest",
            "http://127.0.0.1:5050/v2/library/nginx/manifests/latest?ns=docker.io",
        ),
        (
            _ep("https://m/prefix/v2", "m", "/prefix/v2"),
            "registry.test:5000/foo/bar",
            "blobs",
            "sha256:" + "b" * 64,
            "https://m/prefix/v2/foo/bar/blobs/sha256:" + "b" * 64 + "?ns=registry.test%3A5000",
        ),
        (
            _ep("https://m/custom/api", "m", "/custom/api"),
            "[::1]:5006/foo/bar",
            "manifests",
            "v1",
            "https://m/custom/api/foo/bar/manifests/v1?ns=%5B%3A%3A1%5D%3A5006",
        ),
        (
            _ep("https://m.example", "m.example", ""),
            "m.example/foo",
            "tags",
            "list",
            "https://m.example/foo/tags/list",
        ),
        (
            _ep("https://ghcr.io/v2", "ghcr.io"),
            "ghcr.io/o/r",
            "referrers",
            "sha256:" + "c" * 64,
            "https://ghcr.io/v2/o/r/referrers/sha256:" + "c" * 64,
        ),
        (
            _ep("https://docker.io/v2", "docker.io"),
            "nginx",
            "manifests",
            "1",
            "https://docker.io/v2/library/nginx/manifests/1",
        ),
        (
            _ep("https://registry-1.docker.io/v2", "registry-1.docker.io"),
            "quay.io/x/y",
            "manifests",
            "1",
            "https://registry-1.docker.io/v2/x/y/manifests/1?ns=quay.io",
        ),
    ],
)
def test_request_url(endpoint: Endpoint, ref: str, kind: str, name: str, expected: str) -> None:
    assert request_url(endpoint, parse_reference(ref), kind, name) == expected


def test_request_url_extra_query_sorted_with_ns() -> None:
    url = request_url(
        _ep("http://127.0.0.1:5050/v2", "127.0.0.1:5050", scheme="http"),
        parse_reference("nginx"),
        "referrers",
        "sha256:" + "d" * 64,
        {"artifactType": "application/vnd.cncf.notary.signature"},
    )
    assert url.endswith(
        "/referrers/sha256:"
        + "d" * 64
        + "?artifactType=application%2Fvnd.cncf.notary.signature&ns=docker.io"
    )


@pytest.mark.parametrize(
    ("kind", "name"),
    [("catalog", "x"), ("manifests", "a/b"), ("blobs", ".."), ("tags", ""), ("blobs", "a?b")],
)
def test_request_url_rejects_bad_kind_or_name(kind: str, name: str) -> None:
    with pytest.raises(MalformedInput):
        request_url(_ep(HUB, "registry-1.docker.io"), parse_reference("nginx"), kind, name)


# --------------------------------------------------------------------------- capability filter


def test_filter_endpoints(tmp_path: Path) -> None:
    _build(
        tmp_path,
        {
            "c/docker.io/hosts.toml": (
                '[host."https://pull-only"]\n  capabilities = ["pull"]\n'
                '[host."https://pr"]\n  capabilities = ["pull", "resolve"]\n'
                '[host."https://ref"]\n  capabilities = ["pull", "referrers"]\n'
                '[host."https://push"]\n  capabilities = ["push"]\n'
                '[host."httpbroken:1"]\n'
            )
        },
    )
    config = load_hosts("docker.io", [tmp_path / "c"])

    def hosts(cap: Capability) -> list[str]:
        return [e.host for e in filter_endpoints(config, cap)]

    up = "registry-1.docker.io"
    assert hosts(Capability.RESOLVE) == ["pr", up]
    assert hosts(Capability.PULL) == ["pull-only", "pr", "ref", up]
    assert hosts(Capability.PUSH) == ["push", up]
    assert hosts(Capability.REFERRERS) == ["ref", up]


def test_filter_referrers_falls_back_to_resolve_hosts(tmp_path: Path) -> None:
    _build(
        tmp_path,
        {
            "c/docker.io/hosts.toml": (
                'server = "https://up"\ncapabilities = ["pull", "resolve"]\n'
                '[host."https://pr"]\n  capabilities = ["pull", "resolve"]\n'
            )
        },
    )
    config = load_hosts("docker.io", [tmp_path / "c"])
    found = filter_endpoints(config, Capability.REFERRERS)
    assert [e.host for e in found] == ["pr", "up"]
    assert not any(e.has(Capability.REFERRERS) for e in found)


# --------------------------------------------------------------------------- Go semantics


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("200ms", 0.2),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1h2m", 3720.0),
        ("-1s", -1.0),
        ("+3us", 3e-6),
        ("10\u00b5s", 1e-5),
        ("5.s", 5.0),
        ("1s500ms", 1.5),
    ],
)
def test_go_duration(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "5", ".s", "1x", "s", "-", "1e3s", "9" * 30 + "h", "3000000h", "1.2.3s"]
)
def test_go_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        go_duration(text)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("https://m:5000/a%20b", ("https", "m:5000", "/a b")),
        ("https://user:pw@m/x?q#f", ("https", "m", "/x")),
        ("HTTPS://M", ("https", "M", "")),
        ("httpcache.local:5000", ("httpcache.local", "", "")),
        ("http//m", ("", "", "http//m")),
        ("https://[::1]:5000/v2", ("https", "[::1]:5000", "/v2")),
    ],
)
def test_go_url(raw: str, parsed: tuple[str, str, str]) -> None:
    assert go_url(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        "https://m:x",
        "https://[::1",
        "https://m\x01",
        "https://m/%zz",
        "https://a b",
        "https://u{@m",
        "http[::1]:5000",
        ":x",
    ],
)
def test_go_url_invalid(raw: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        go_url(raw)


def test_table_header_scan_ignores_strings_comments_and_arrays() -> None:
    text = (
        '# [host."c1"]\n'
        'x = """\n[host."in-string"]\n"""\n'
        "y = [\n  [1],\n]\n"
        '[host . "a"]\n'
        '[[host."array"]]\n'
        "[ 'host'.'b' . header ]\n"
        '[host."\\u0063"]\n'
    )
    assert table_header_hosts(text) == ["a", "b", "c"]


def test_differences_documented() -> None:
    assert len(CONTAINERD_1X_DIFFERENCES) >= 5
    assert all(len(d) > 20 for d in CONTAINERD_1X_DIFFERENCES)


def test_errors_are_domain_errors(tmp_path: Path) -> None:
    _build(tmp_path, {"c/docker.io": "file"})
    with pytest.raises(PullgateError):
        load_hosts("docker.io", [tmp_path / "c"])
