"""Authentication: challenges, token flow, Basic, credential stores, and secrecy of secrets."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullgate.errors import ConfigError, PullgateError, Reason
from pullgate.registry.auth import (
    DockerConfigCredentials,
    StaticCredentials,
    parse_www_authenticate,
)
from pullgate.registry.client import RegistryClient
from pullgate.registry.model import Credentials, ImageReference, RegistryError
from pullgate.registry.transport import RequestRecord
from tests.support.fake_registry import TOKEN, FakeRegistry, hosts_for, write_docker_config
from tests.support.parts import build_client

REF = ImageReference(registry="registry.test", repository="app", tag="v1")
PASSWORD = "hunter2-PASSWORD-value"
IDENTITY = "identity-REFRESH-token"


@pytest.fixture
def reg() -> Iterator[FakeRegistry]:
    with FakeRegistry() as registry:
        registry.put_image("app")
        yield registry


def _client(
    reg: FakeRegistry, creds: Credentials | None, log: list[RequestRecord] | None = None
) -> RegistryClient:
    return build_client(
        hosts_for(reg.endpoint()),
        credentials=StaticCredentials(creds) if creds else None,
        request_log=log.append if log is not None else None,
    )


def test_parse_www_authenticate() -> None:
    (bearer,) = parse_www_authenticate(
        ['Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull,push"']
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a:pull,push",
    }
    basic, other = parse_www_authenticate(['Basic realm="x"', "Negotiate"])
    assert (basic.scheme, basic.params["realm"], other.scheme) == ("basic", "x", "negotiate")
    assert parse_www_authenticate(["", "   "]) == ()


def test_anonymous_token_flow_and_cache(reg: FakeRegistry) -> None:
    reg.behaviour.auth = "bearer"
    with _client(reg, None) as client:
        client.resolve(REF)
        client.resolve(REF)
    token_requests = [r for r in reg.requests() if r.path.startswith("/token")]
    assert len(token_requests) == 1
    assert token_requests[0].method == "GET"
    assert "scope=repository%3Aapp%3Apull" in token_requests[0].path
    assert reg.requests("manifests")[-1].authorized


def test_token_flow_with_credentials(reg: FakeRegistry) -> None:
    reg.behaviour.auth = "bearer"
    reg.behaviour.username, reg.behaviour.password = "alice", PASSWORD
    with _client(reg, Credentials(username="alice", password=PASSWORD)) as client:
        client.resolve(REF)
    with _client(reg, None) as client, pytest.raises(RegistryError) as err:
        client.resolve(REF)
    assert err.value.reason is Reason.REGISTRY_AUTH


def test_identity_token_uses_oauth_post(reg: FakeRegistry) -> None:
    reg.behaviour.auth = "bearer"
    reg.behaviour.identity_token = IDENTITY
    with _client(reg, Credentials(identity_token=IDENTITY)) as client:
        client.resolve(REF)
    assert [r.method for r in reg.requests() if r.path.startswith("/token")] == ["POST"]


def test_basic_auth(reg: FakeRegistry) -> None:
    reg.behaviour.auth = "basic"
    reg.behaviour.username, reg.behaviour.password = "bob", PASSWORD
    with _client(reg, Credentials(username="bob", password=PASSWORD)) as client:
        client.resolve(REF)
    with (
        _client(reg, Credentials(username="bob", password="wrong")) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.resolve(REF)
    assert err.value.reason is Reason.REGISTRY_AUTH


def test_secrets_never_logged_nor_in_errors(
    reg: FakeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    records: list[RequestRecord] = []
    reg.behaviour.auth = "bearer"
    reg.behaviour.username, reg.behaviour.password = "alice", PASSWORD
    creds = Credentials(username="alice", password=PASSWORD, identity_token="")
    with _client(reg, creds, records) as client:
        client.resolve(REF)  # success path: a token is issued and used
        reg.behaviour.password = "rotated"
        client._auth._tokens.clear()
        with pytest.raises(PullgateError) as err:
            client.resolve(REF)
        texts = [str(err.value), repr(err.value), repr(client), repr(creds), caplog.text]
        texts += [repr(r) for r in records]
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for text in texts:
        for secret in (PASSWORD, TOKEN, basic):
            assert secret not in text
    assert err.value.reason is Reason.REGISTRY_AUTH
    for entry in reg.requests():  # the fake's own log strips Authorization too
        assert "Authorization" not in entry.headers


# ---------------------------------------------------------------------------- credential stores


def test_static_credentials_cri_semantics() -> None:
    everywhere = StaticCredentials(Credentials(username="u", password="p"))
    assert everywhere.get("mirror.local:5000") is not None
    scoped = StaticCredentials(
        Credentials(username="u", password="p", server_address="https://reg.test:5000")
    )
    assert scoped.get("reg.test:5000") is not None
    assert scoped.get("mirror.local:5000") is None
    schemeless = StaticCredentials(
        Credentials(username="u", password="p", server_address="reg.test:5000")
    )
    assert schemeless.get("reg.test:5000") is None


def test_docker_config(tmp_path: Path) -> None:
    auth = base64.b64encode(b"carol:" + PASSWORD.encode()).decode()
    path = write_docker_config(
        tmp_path / "config.json",
        {
            "https://index.docker.io/v1/": {"auth": auth},
            "reg.test:5000": {"username": "dave", "password": "pw"},
            "https://other.test/v2/": {"identitytoken": IDENTITY},
            "empty.test": {},
        },
    )
    store = DockerConfigCredentials.from_file(path)
    hub = store.get("registry-1.docker.io")
    assert hub is not None
    assert (hub.username, hub.password) == ("carol", PASSWORD)
    local = store.get("reg.test:5000")
    assert local is not None
    assert local.username == "dave"
    other = store.get("other.test")
    assert other is not None
    assert other.identity_token == IDENTITY
    assert store.get("empty.test") is None
    assert PASSWORD not in repr(store)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"auths": []}',
        '{"auths": {"h": {"auth": "!!!"}}}',
        '{"auths": {"h": {"auth": "bm9jb2xvbg=="}}}',  # "nocolon"
        '{"auths": {"h": {"username": 5}}}',
        '{"auths": {"h": "x"}}',
    ],
)
def test_docker_config_malformed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        DockerConfigCredentials.from_file(path)
    assert err.value.reason is Reason.CONFIG


def test_docker_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DockerConfigCredentials.from_file(tmp_path / "absent.json")
