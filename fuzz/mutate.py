"""Structure-aware mutation: every node of a JSON document has a path and any node can be
replaced; an input's answers (``fuzz.wire``) get their status, a header or their JSON body
changed. :func:`mutate_structure` is the custom half of the atheris mutator (``fuzz.worker``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from fuzz.wire import SEP, Reply, parse_reply
from pullgate.registry.client import (
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
)
from pullgate.verification.model import ARTIFACT_TYPE_SIGNATURE, MEDIA_TYPE_JWS

# Tokens libFuzzer splices into inputs (its -dict): the vocabulary of registry answers.
DICTIONARY = (
    *("manifests", "mediaType", "digest", "size", "platform", "os", "architecture", "variant"),
    *("layers", "blobs", "config", "subject", "artifactType", "annotations", "schemaVersion"),
    *("errors", "code", "NAME_UNKNOWN", "token", "access_token", "expires_in"),
    *("Content-Type: ", "Content-Length: ", "Docker-Content-Digest: ", "Link: "),
    *("OCI-Filters-Applied: ", "WWW-Authenticate: ", "Retry-After: "),
    *("Bearer ", "Basic ", "realm=", "service=", "scope=", 'rel="next"', "GMT"),
    *(MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_JWS),
    *(MEDIA_TYPE_DOCKER_MANIFEST, ARTIFACT_TYPE_SIGNATURE, "attestation-manifest"),
    *(
        "sha256:",
        "sha512:",
        "https://",
        "http://",
        "registry.fuzz.test",
        "/v2/app/",
        "linux",
        "amd64",
    ),
)
HEADERS = (
    "Content-Type",
    "Content-Length",
    "Docker-Content-Digest",
    "Link",
    "OCI-Filters-Applied",
    "WWW-Authenticate",
    "Retry-After",
)
_PUNCTUATION = (" ", ",", ";", "=", '"', "<", ">", "\\", "/", ":", "[", "]", "#", "?", "&")
STATUSES = (200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 405, 410, 429, 500, 503)


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every node of a JSON document (the root's is ``()``), depth first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from json_paths(value, (*prefix, i))


def replace_at(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``node`` with the node at ``path`` replaced by ``value``."""
    if not path:
        return value
    head, *rest = path
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = replace_at(node[head], tuple(rest), value)
    return copy


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A small random JSON value, its strings and numbers drawn from the registry vocabulary
    and from the edges (huge, negative, fractional numbers; empty and odd strings)."""
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice((None, True, False))
    if kind == 1:
        return rng.choice((0, -1, 1, 7, 2**31, 2**63, 2**64, 10**400, -(10**30)))
    if kind == 2:
        return rng.choice((0.5, -0.0, 1e308, 1e-300))
    if kind in (3, 4):
        return rng.choice((*DICTIONARY, "", "\u0000", "sha256:" + "a" * 64, "x" * 100))
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(DICTIONARY): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _mutate_json(text: bytes, rng: random.Random) -> bytes | None:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    paths = list(json_paths(doc))
    return json.dumps(replace_at(doc, rng.choice(paths), random_json(rng))).encode()


def header_value(rng: random.Random) -> str:
    """A header value built from registry vocabulary, punctuation and stray bytes."""
    parts = [
        rng.choice((rng.choice(DICTIONARY), rng.choice(_PUNCTUATION), chr(rng.randrange(256))))
        for _ in range(rng.randrange(1, 10))
    ]
    return "".join(parts).replace("\n", " ").replace("\r", " ").replace("\x00", " ")


def mutate_structure(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one field changed structurally (see the module docstring)."""
    fields = data.split(SEP)
    at = rng.randrange(len(fields))
    field = fields[at]
    whole = _mutate_json(field, rng) if rng.random() < 0.3 else None
    if whole is not None:
        fields[at] = whole
        return SEP.join(fields)
    answer = parse_reply(field)
    how = rng.randrange(4)
    if how == 0:
        body = _mutate_json(answer.body, rng) or json.dumps(random_json(rng)).encode()
        answer = Reply(answer.status, answer.headers, body)
    elif how == 1:
        name = rng.choice((*HEADERS, *(n for n, _ in answer.headers)))
        kept = [
            (n, v) for n, v in answer.headers if n.lower() != name.lower() or rng.random() < 0.3
        ]
        answer = Reply(answer.status, (*kept, (name, header_value(rng))), answer.body)
    elif how == 2:
        answer = Reply(rng.choice(STATUSES), answer.headers, answer.body)
    else:
        fields[at] = header_value(rng).encode("latin-1")
        return SEP.join(fields)
    fields[at] = answer.encode().replace(SEP, b"")
    return SEP.join(fields)
