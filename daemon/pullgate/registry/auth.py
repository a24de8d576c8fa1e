"""Registry authentication: challenges, the token flow, Basic auth and credential stores.

Implements the distribution token-authentication flow (docker "token" and "oauth" specs, as used
by containerd's ``remotes/docker/auth``) and docs/containerd.md §1.7 (credentials per contacted
endpoint):

* ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` → fetch a token from the realm:
  with an identity token, ``POST`` form ``grant_type=refresh_token`` (OAuth2); otherwise ``GET``
  with Basic credentials, or anonymously when there are none;
* the realm may be on another host (Docker Hub's is), as containerd allows, but an endpoint
  reached over HTTPS never sends anything (credentials, refresh token, ``hosts.toml`` headers)
  to a plain-HTTP realm: that challenge is ``REGISTRY_AUTH``; a token must be printable ASCII
  (it becomes a header value);
* ``WWW-Authenticate: Basic`` → Basic credentials;
* tokens are cached per (endpoint host, scope) until ``expires_in`` (default 60 s) runs out.

Credential stores: :class:`StaticCredentials` has CRI ``AuthConfig`` semantics (an empty
``server_address`` offers the credentials to every endpoint, mirrors included; otherwise only to the
host of that URL). :class:`DockerConfigCredentials` reads ``auths`` of a docker ``config.json``;
credential helpers (``credsStore``/``credHelpers``) are deliberately not run (no subprocesses in the
daemon). ``registry_token`` is ignored, as containerd does.

Secrets never appear in logs, exception messages or reprs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from pullgate.common.clock import Clock
from pullgate.errors import ConfigError, PullgateError, Reason
from pullgate.registry.model import Credentials, Endpoint, RegistryError
from pullgate.registry.transport import Transport

TOKEN_RESPONSE_CAP = 1024 * 1024
DEFAULT_TOKEN_LIFETIME = 60
CLIENT_ID = "pullgate"
DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


def parse_www_authenticate(values: list[str]) -> tuple[Challenge, ...]:
    """Parse ``WWW-Authenticate`` header values into challenges (unparsable parts are skipped).

    Args:
        values: Every value of the header (it may be repeated).

    Returns:
        The challenges in order; scheme names are lower-cased, parameter names too.
    """
    out: list[Challenge] = []
    for value in values:
        rest = value.strip()
        while rest:
            match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
            if match is None:
                break
            scheme = match.group(1).lower()
            rest = rest[match.end() :]
            params: dict[str, str] = {}
            while rest:
                pmatch = _PARAM_RE.match(rest)
                if pmatch is None:
                    break
                raw = pmatch.group(2)
                val = re.sub(r"\\(.)", r"\1", raw) if raw is not None else pmatch.group(3)
                params[pmatch.group(1).lower()] = val
                rest = rest[pmatch.end() :]
            out.append(Challenge(scheme=scheme, params=params))
            rest = rest.lstrip(", ")
    return tuple(out)


class CredentialStore(Protocol):
    """Supplies credentials for one contacted endpoint host (``host[:port]``)."""

    def get(self, host: str) -> Credentials | None: ...


def _url_host(value: str) -> str:
    """``host[:port]`` of a URL that has a scheme; ``""`` when it has none (containerd)."""
    try:
        return urlsplit(value).netloc.rpartition("@")[2].lower()
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """One CRI ``AuthConfig``: offered to every endpoint, or only to ``server_address``'s host."""

    credentials: Credentials

    def get(self, host: str) -> Credentials | None:
        """The credentials when they apply to ``host``."""
        server = self.credentials.server_address
        if not server:
            return self.credentials
        return self.credentials if _url_host(server) == host.lower() else None


def _normalise_config_key(key: str) -> str:
    """``https://host/v1/`` → ``host``; docker.io's index URL → ``docker.io``."""
    text = key.strip()
    host = _url_host(text) if "://" in text else text.split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def _entry_credentials(key: str, entry: Any) -> Credentials:
    if not isinstance(entry, dict):
        raise ConfigError(f"docker config: auths entry {key!r} is not an object")
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    identity = entry.get("identitytoken") or ""
    encoded = entry.get("auth") or ""
    if not all(isinstance(v, str) for v in (username, password, identity, encoded)):
        raise ConfigError(f"docker config: auths entry {key!r} has a non-string field")
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"docker config: auths entry {key!r}: invalid 'auth' value") from exc
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise ConfigError(f"docker config: auths entry {key!r}: 'auth' is not user:password")
        username, password = user, secret
    return Credentials(username=username, password=password, identity_token=identity)


@dataclass(frozen=True, slots=True)
class DockerConfigCredentials:
    """``auths`` of a docker ``config.json``, keyed by registry host."""

    by_host: Mapping[str, Credentials]

    def __repr__(self) -> str:
        return f"DockerConfigCredentials(hosts={sorted(self.by_host)!r})"

    @classmethod
    def from_mapping(cls, document: Any) -> DockerConfigCredentials:
        """Build from a parsed ``config.json`` document.

        Raises:
            ConfigError: The document or one of its ``auths`` entries is malformed.
        """
        if not isinstance(document, dict):
            raise ConfigError("docker config: top level is not an object")
        auths = document.get("auths")
        if auths is None:
            auths = {}
        if not isinstance(auths, dict):
            raise ConfigError("docker config: 'auths' is not an object")
        by_host: dict[str, Credentials] = {}
        for key, entry in auths.items():
            creds = _entry_credentials(key, entry)
            if creds.username or creds.password or creds.identity_token:
                by_host.setdefault(_normalise_config_key(key), creds)
        return cls(by_host)

    @classmethod
    def from_file(cls, path: Path) -> DockerConfigCredentials:
        """Read a docker ``config.json``.

        Raises:
            ConfigError: Unreadable file, invalid JSON or malformed entries.
        """
        try:
            document = json.loads(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"docker config {str(path)!r}: {exc.strerror or exc}") from exc
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"docker config {str(path)!r} is not valid JSON") from exc
        return cls.from_mapping(document)

    def get(self, host: str) -> Credentials | None:
        """Credentials for ``host`` (``registry-1.docker.io`` maps to ``docker.io``)."""
        key = host.lower()
        if key in DOCKER_HUB_HOSTS:
            key = "docker.io"
        return self.by_host.get(key)


def basic_authorization(creds: Credentials) -> str:
    """The ``Authorization`` value for Basic auth."""
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(slots=True)
class _Token:
    value: str
    expires: datetime


@dataclass(slots=True)
class Authenticator:
    """Answers challenges and caches tokens per (endpoint host, scope).

    Args:
        transport: Used for realm requests (with the endpoint's TLS setup and headers).
        credentials: Where credentials come from; None means anonymous only.
        clock: For token expiry.
    """

    transport: Transport
    credentials: CredentialStore | None
    clock: Clock
    _tokens: dict[tuple[str, str], _Token] = field(default_factory=dict)
    _basic: set[str] = field(default_factory=set)

    def __repr__(self) -> str:
        return f"Authenticator(cached_tokens={len(self._tokens)})"

    def _creds(self, endpoint: Endpoint) -> Credentials | None:
        return self.credentials.get(endpoint.host) if self.credentials is not None else None

    def cached(self, endpoint: Endpoint, scope: str) -> str | None:
        """An ``Authorization`` value already known for (endpoint host, scope), if any."""
        token = self._tokens.get((endpoint.host, scope))
        if token is not None:
            if token.expires > self.clock.now():
                return f"Bearer {token.value}"
            del self._tokens[(endpoint.host, scope)]
        if endpoint.host in self._basic:
            creds = self._creds(endpoint)
            if creds is not None:
                return basic_authorization(creds)
        return None

    def answer(self, endpoint: Endpoint, challenges: tuple[Challenge, ...], scope: str) -> str:
        """Obtain an ``Authorization`` value for a 401 from ``endpoint``.

        Raises:
            RegistryError: ``REGISTRY_AUTH`` when no challenge can be answered.
        """
        creds = self._creds(endpoint)
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                return self._bearer(endpoint, challenge, scope, creds)
        for challenge in challenges:
            if challenge.scheme == "basic" and creds is not None and creds.username:
                self._basic.add(endpoint.host)
                return basic_authorization(creds)
        raise RegistryError(
            Reason.REGISTRY_AUTH,
            f"endpoint {endpoint.url}: authentication required and no usable challenge "
            f"or credentials",
            endpoint=endpoint.url,
        )

    def _bearer(
        self, endpoint: Endpoint, challenge: Challenge, scope: str, creds: Credentials | None
    ) -> str:
        realm = challenge.params["realm"]
        allowed = ("http", "https") if self.transport.reached_over_http(endpoint) else ("https",)
        try:
            scheme, query = urlsplit(realm).scheme.lower(), urlsplit(realm).query
        except ValueError:  # e.g. an unclosed IPv6 bracket
            scheme, query = "", ""
        if scheme not in allowed:
            raise RegistryError(
                Reason.REGISTRY_AUTH,
                f"endpoint {endpoint.url}: token realm is not an {' or '.join(allowed)} URL",
                endpoint=endpoint.url,
            )
        form: dict[str, str] = {}
        if challenge.params.get("service"):
            form["service"] = challenge.params["service"]
        form["scope"] = challenge.params.get("scope") or scope
        try:
            if creds is not None and creds.identity_token:
                form.update(
                    grant_type="refresh_token",
                    refresh_token=creds.identity_token,
                    client_id=CLIENT_ID,
                )
                response = self.transport.request(
                    endpoint,
                    "POST",
                    realm,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    body=urlencode(form).encode(),
                    cap=TOKEN_RESPONSE_CAP,
                )
            else:
                headers = {}
                if creds is not None and creds.username:
                    headers["Authorization"] = basic_authorization(creds)
                sep = "&" if query else "?"
                response = self.transport.request(
                    endpoint,
                    "GET",
                    realm + sep + urlencode(form),
                    headers=headers,
                    cap=TOKEN_RESPONSE_CAP,
                )
        except PullgateError as exc:
            raise RegistryError(
                Reason.REGISTRY_AUTH if exc.reason is Reason.MALFORMED else exc.reason,
                f"endpoint {endpoint.url}: token request failed ({exc.reason.value})",
                endpoint=endpoint.url,
            ) from None
        if response.status != 200:
            raise RegistryError(
                Reason.REGISTRY_AUTH,
                f"endpoint {endpoint.url}: token endpoint answered HTTP {response.status}",
                endpoint=endpoint.url,
            )
        token, lifetime = _parse_token(response.body, endpoint)
        self._tokens[(endpoint.host, scope)] = _Token(
            token, self.clock.now() + timedelta(seconds=lifetime)
        )
        return f"Bearer {token}"


def _parse_token(body: bytes, endpoint: Endpoint) -> tuple[str, int]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    token = None
    lifetime: Any = DEFAULT_TOKEN_LIFETIME
    if isinstance(doc, dict):
        token = doc.get("token") or doc.get("access_token")
        lifetime = doc.get("expires_in", DEFAULT_TOKEN_LIFETIME)
    if not isinstance(token, str) or not token or not (token.isascii() and token.isprintable()):
        raise RegistryError(
            Reason.REGISTRY_AUTH,
            f"endpoint {endpoint.url}: token response carries no usable token",
            endpoint=endpoint.url,
        )
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, min(lifetime, 3600)
