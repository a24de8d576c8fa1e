"""Image references, normalised the way containerd's CRI plugin and docker do.

Implements the reference grammar of ``distribution/reference`` (``reference.go``) together with
the "familiar name" normalisation (``normalize.go``: ``ParseNormalizedNamed`` /
``ParseDockerRef``) that containerd applies before it looks a registry up in ``certs.d``
(docs/containerd.md §1.2: the lookup key is ``reference.Spec.Hostname()``).

Rules, in the order they are applied:

* A bare 64-character lowercase hex string is rejected (it would be an image ID).
* Domain split at the first ``/``: the first component is a registry when it is ``localhost``,
  contains ``.`` or ``:``, or contains an uppercase letter; otherwise the whole name lives on
  Docker Hub. ``index.docker.io`` is rewritten to ``docker.io``. A Docker Hub name with no ``/``
  in its path gets the ``library/`` prefix.
* The repository path must be lowercase: components of ``[a-z0-9]`` joined by ``.``, ``_``,
  ``__`` or runs of ``-``, separated by ``/``. ``registry/path`` is at most 255 characters.
* Tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``. Digest: ``sha256``/``sha384``/``sha512`` with
  lowercase hex of the right length (go-digest's validation).
* No tag and no digest means ``:latest``. With both, containerd's ``ParseDockerRef`` keeps only
  the digest; :class:`ImageReference` keeps the tag for display, and every consumer resolves by
  the digest when one is present.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from pullgate.errors import MalformedInput
from pullgate.registry.model import ImageReference, canonical_registry

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# Longest possible valid input: name (255) + ":" + tag (128) + "@sha512:" + 128 hex.
_MAX_INPUT = 600

_DIGEST_HEX_LENGTHS = MappingProxyType({"sha256": 64, "sha384": 96, "sha512": 128})

_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HEX = re.compile(r"[a-f0-9]+")


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: (registry, remainder incl. tag/digest)."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _check_digest(text: str, digest: str) -> None:
    algorithm, colon, encoded = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if not colon or expected is None:
        raise MalformedInput(f"invalid reference {text!r}: unsupported digest {digest!r}")
    if len(encoded) != expected or not _HEX.fullmatch(encoded):
        raise MalformedInput(f"invalid reference {text!r}: malformed {algorithm} digest")


def parse_reference(text: str) -> ImageReference:
    """Parse and normalise an image reference as containerd/docker do.

    Args:
        text: ``nginx``, ``user/app:1``, ``localhost:5000/x@sha256:…``, ``[::1]:5000/x`` …

    Returns:
        The normalised reference (``docker.io/library/nginx`` with tag ``latest`` …).

    Raises:
        MalformedInput: the text is not a valid reference.
    """
    untrusted: object = text  # callers may pass anything decoded from JSON/gRPC
    if not isinstance(untrusted, str) or not text:
        raise MalformedInput("image reference must be a non-empty string")
    if len(text) > _MAX_INPUT:
        raise MalformedInput("image reference is too long")
    if _IMAGE_ID.fullmatch(text):
        raise MalformedInput("a 64-character hex string is an image ID, not a reference")

    domain, remainder = _split_domain(text)
    repository_part = remainder.split(":", 1)[0]
    if repository_part.lower() != repository_part:
        raise MalformedInput(f"invalid reference {text!r}: repository name must be lowercase")

    name_and_tag, at, digest = remainder.partition("@")
    if at:
        _check_digest(text, digest)
    repository, colon, tag = name_and_tag.partition(":")
    if colon and not _TAG.fullmatch(tag):
        raise MalformedInput(f"invalid reference {text!r}: invalid tag {tag!r}")
    if not _DOMAIN.fullmatch(domain):
        raise MalformedInput(f"invalid reference {text!r}: invalid registry {domain!r}")
    components = repository.split("/")
    if not all(_PATH_COMPONENT.fullmatch(c) for c in components):
        raise MalformedInput(f"invalid reference {text!r}: invalid repository {repository!r}")
    if len(domain) + 1 + len(repository) > NAME_TOTAL_LENGTH_MAX:
        raise MalformedInput(f"invalid reference {text!r}: name longer than 255 characters")

    return ImageReference(
        registry=domain,
        repository=repository,
        tag=tag if colon else (None if at else DEFAULT_TAG),
        digest=digest if at else None,
    )


def registry_host_for_certs_d(ref: ImageReference) -> str:
    """The host name containerd looks up under ``certs.d`` for ``ref`` (§1.2).

    This is the reference's registry exactly as parsed (``docker.io`` for Docker Hub, never
    ``registry-1.docker.io``; ports and IPv6 brackets kept: ``[::1]:5000``).
    """
    return ref.registry


def selectable_scope(scope: str) -> str:
    """The registry scope that references to ``scope``'s repository are matched against.

    Trust-policy selection compares a scope with :attr:`ImageReference.policy_locator`, whose
    registry is canonical and whose Docker Hub names carry ``library/``; a scope spelled any
    other way (``host:443/app``, ``Host/app``, ``index.docker.io/...``, ``docker.io/nginx``,
    ``host:05000/app``) is never selected. Returns ``scope`` itself when it is already in that
    form (or is no ``registry/repository`` at all).
    """
    domain, sep, repository = scope.partition("/")
    if not sep or not domain or not repository:
        return scope
    registry = canonical_registry(domain)
    if registry == DEFAULT_DOMAIN and "/" not in repository:
        repository = OFFICIAL_REPO_PREFIX + repository
    return f"{registry}/{repository}"
