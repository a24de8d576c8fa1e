"""Manifest media types pullgate asks registries for, and how an answer's type is read."""

from __future__ import annotations

import json

from pullgate.errors import MalformedInput
from pullgate.registry.endpoint_errors import media_type_of
from pullgate.registry.http_types import Response

__all__ = [
    "MANIFEST_ACCEPT",
    "MANIFEST_MEDIA_TYPES",
    "MEDIA_TYPE_DOCKER_LIST",
    "MEDIA_TYPE_DOCKER_MANIFEST",
    "MEDIA_TYPE_OCI_INDEX",
    "MEDIA_TYPE_OCI_MANIFEST",
    "manifest_type",
]

MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_MEDIA_TYPES = (
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
)
MANIFEST_ACCEPT = ", ".join((*MANIFEST_MEDIA_TYPES, "*/*"))


def manifest_type(response: Response) -> str:
    """The media type of a manifest answer: ``Content-Type`` when it is a manifest type, else
    the body's ``mediaType`` when that is one, else ``Content-Type`` as it is.

    Raises:
        MalformedInput: Neither says anything.
    """
    media_type = media_type_of(response)
    if media_type in MANIFEST_MEDIA_TYPES:
        return media_type
    try:
        doc = json.loads(response.body)
    except (ValueError, RecursionError):
        doc = None
    body_type = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(body_type, str) and body_type in MANIFEST_MEDIA_TYPES:
        return body_type
    if media_type:
        return media_type
    raise MalformedInput("manifest response has no media type (Content-Type nor mediaType)")
