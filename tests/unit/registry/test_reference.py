"""Image reference normalisation, as containerd/docker do it (reference.py)."""

from __future__ import annotations

import pytest

from pullgate.errors import MalformedInput, Reason
from pullgate.registry.model import ImageReference
from pullgate.registry.reference import (
    parse_reference,
    registry_host_for_certs_d,
    selectable_scope,
)

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("user/app", "docker.io", "user/app", "latest", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
        ("registry-1.docker.io/nginx", "registry-1.docker.io", "nginx", "latest", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("localhost:5000/x", "localhost:5000", "x", "latest", None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("myreg.example:5000/team/app:v1", "myreg.example:5000", "team/app", "v1", None),
        ("host:5000/path/deeper/img", "host:5000", "path/deeper/img", "latest", None),
        ("[::1]:5000/x", "[::1]:5000", "x", "latest", None),
        ("[fe80::1]/x:t", "[fe80::1]", "x", "t", None),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest", None),
        ("Registry.Example/app", "Registry.Example", "app", "latest", None),
        ("Foo/bar", "Foo", "bar", "latest", None),
        (f"nginx@{D256}", "docker.io", "library/nginx", None, D256),
        (f"ghcr.io/o/r:v1@{D256}", "ghcr.io", "o/r", "v1", D256),
        (f"ghcr.io/o/r@{D512}", "ghcr.io", "o/r", None, D512),
        ("a/b__c/d-e--f/g.h_i", "docker.io", "a/b__c/d-e--f/g.h_i", "latest", None),
        ("x:Tag_1.2-rc", "docker.io", "library/x", "Tag_1.2-rc", None),
    ],
)
def test_parse_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)
    assert registry_host_for_certs_d(ref) == registry


def test_str_round_trip() -> None:
    assert str(parse_reference("nginx")) == "docker.io/library/nginx:latest"
    ref = parse_reference(f"ghcr.io/o/r:v1@{D256}")
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a" * 64,  # an image ID
        "NGINX",
        "user/App",
        "docker.io/Library/nginx",
        "nginx:",
        "nginx:-bad",
        "nginx:" + "t" * 129,
        "nginx@sha256:abc",
        "nginx@sha256:" + "A" * 64,
        "nginx@md5:" + "a" * 32,
        "nginx@" + "a" * 64,
        "/nginx",
        "nginx/",
        "a//b",
        "a/-b",
        "a/b-",
        "a/b..c",
        "host:port/x",
        "::1/x",
        "[::1/x",
        "[zz]:5000/x",
        "-host.example/x",
        "host.example:5000/x y",
        " nginx",
        "nginx\n",
        "ghcr.io/" + "a" * 250,
        "x" * 1000,
        "nginx@@" + D256,
        "exa mple.com/x",
        "ex\u00e4mple.com/x",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(MalformedInput) as info:
        parse_reference(text)
    assert info.value.reason is Reason.MALFORMED


def test_non_string_is_malformed() -> None:
    with pytest.raises(MalformedInput):
        parse_reference(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "policy_locator"),
    [
        ("REGISTRY.example.com/app@sha256:" + "a" * 64, "registry.example.com/app"),
        ("registry.example.com:443/app:v1", "registry.example.com/app"),
        ("Registry.Example.com:443/app:v1", "registry.example.com/app"),
        ("registry-1.docker.io/library/nginx:1", "docker.io/library/nginx"),
        ("index.docker.io/library/nginx:1", "docker.io/library/nginx"),
        ("nginx", "docker.io/library/nginx"),
        ("registry.example.com:5000/app:v1", "registry.example.com:5000/app"),
        ("[::1]:443/app:v1", "[::1]/app"),
        # Go's dialer reads ports as decimal numbers: leading zeros name the same port.
        ("registry.example.com:0443/app:v1", "registry.example.com/app"),
        ("localhost:05000/x:v1", "localhost:5000/x"),
        ("localhost:0005000/x:v1", "localhost:5000/x"),
        ("registry-1.docker.io:0443/library/nginx:1", "docker.io/library/nginx"),
        ("host:000/x:v1", "host:0/x"),
        # one IPv6 address, many spellings (RFC 5952 form); IPv4-mapped dials IPv4
        ("[0:0::1]:5000/app:v1", "[::1]:5000/app"),
        ("[::0:1]:05000/app:v1", "[::1]:5000/app"),
        ("[0000:0000:0000:0000:0000:0000:0000:0001]/app:v1", "[::1]/app"),
        ("[FD00::A]:5000/app:v1", "[fd00::a]:5000/app"),
        ("[::ffff:7f00:1]:5000/app:v1", "127.0.0.1:5000/app"),
    ],
)
def test_policy_locator_is_canonical(text: str, policy_locator: str) -> None:
    # Every spelling that reaches the same registry must select the same trust-policy statement.
    assert parse_reference(text).policy_locator == policy_locator


@pytest.mark.parametrize(
    "text", ["registry.example.com:0443/app:v1", "localhost:05000/x:v1", "[0:0::1]:5000/app:v1"]
)
def test_the_registry_is_kept_as_written_for_certs_d(text: str) -> None:
    # containerd looks its certs.d directory up by the host as written (checked against the
    # real containerd 1.6 and 2.4: a directory named for the canonical spelling is not used).
    assert registry_host_for_certs_d(parse_reference(text)) == text.rsplit("/", 1)[0]


@pytest.mark.parametrize(
    ("scope", "selectable"),
    [
        ("registry.example.com:443/app", "registry.example.com/app"),
        ("registry.example.com:0443/app", "registry.example.com/app"),
        ("REGISTRY.example.com/app", "registry.example.com/app"),
        ("localhost:05000/x", "localhost:5000/x"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx"),
        ("registry-1.docker.io/library/nginx", "docker.io/library/nginx"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("docker.io:443/team/app", "docker.io/team/app"),
        ("registry.example.com/app", "registry.example.com/app"),
        ("localhost:5000/x", "localhost:5000/x"),
        ("docker.io/library/nginx", "docker.io/library/nginx"),
        ("local/myOCILayout", "local/myOCILayout"),
    ],
)
def test_selectable_scope(scope: str, selectable: str) -> None:
    assert selectable_scope(scope) == selectable
    # the suggestion is what a reference naming that repository is matched as
    reference = parse_reference(f"{scope}:v1") if scope.islower() else None
    if reference is not None and not scope.startswith("local/"):
        assert reference.policy_locator == selectable
