"""Several client certificates for one host (hosts.toml ``client = [...]`` or a docker-style
directory): containerd offers the one the server accepts. A Python context holds one, so the
transport offers them in turn on a refusal and keeps the accepted one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.errors import PullgateError, Reason
from pullgate.registry.model import ClientCertificate, ImageReference, RegistryLimits
from tests.support.fake_registry import FakeRegistry, hosts_for, make_tls
from tests.support.parts import build_client

LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=2.0, request_timeout=10.0)


@pytest.mark.parametrize("accepted_first", [True, False], ids=["first", "second"])
def test_the_certificate_the_server_accepts_is_offered(
    tmp_path: Path, accepted_first: bool
) -> None:
    good = make_tls(tmp_path / "a", require_client_cert=True)
    other = make_tls(tmp_path / "b", name="other")
    pairs = (
        ClientCertificate(cert=good.client_cert, key=good.client_key),
        ClientCertificate(cert=other.client_cert, key=other.client_key),
    )
    with FakeRegistry(tls=good) as reg:
        image = reg.put_image("app", tag="v1")
        endpoint = reg.endpoint(client_certificates=pairs if accepted_first else pairs[::-1])
        client = build_client(hosts_for(endpoint, registry=reg.host), limits=LIMITS)
        ref = ImageReference(registry=reg.host, repository="app", tag="v1")
        for _ in range(2):  # and again, with the accepted one remembered
            assert client.resolve(ref).digest == image.digest


def test_no_certificate_the_server_accepts_is_a_tls_error(tmp_path: Path) -> None:
    good = make_tls(tmp_path / "a", require_client_cert=True)
    others = [make_tls(tmp_path / f"o{i}", name=f"other{i}") for i in range(2)]
    with FakeRegistry(tls=good) as reg:
        reg.put_image("app", tag="v1")
        endpoint = reg.endpoint(
            client_certificates=tuple(
                ClientCertificate(cert=o.client_cert, key=o.client_key) for o in others
            )
        )
        client = build_client(hosts_for(endpoint, registry=reg.host), limits=LIMITS)
        with pytest.raises(PullgateError) as excinfo:
            client.resolve(ImageReference(registry=reg.host, repository="app", tag="v1"))
        assert excinfo.value.reason is Reason.REGISTRY_TLS
