"""Targets for the parsers that take one document or one header: descriptors, image indexes and
Docker manifest lists, ``Link``, ``Retry-After`` and redirect ``Location``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import urllib3

from fuzz.oracle import FuzzTarget, check
from fuzz.scripted import ScriptedTransport, endpoint, sha256
from fuzz.wire import Reply, header_text, split_fields
from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor, is_digest
from pullgate.decision.matcher import Profile, pick, ranked
from pullgate.decision.platform import Platform, index_entries
from pullgate.errors import PullgateError
from pullgate.registry.client import MEDIA_TYPE_OCI_MANIFEST
from pullgate.registry.redirect import Hop, next_hop, origin, same_origin
from pullgate.registry.source import next_link
from pullgate.registry.transport import Response, parse_retry_after

CLOCK = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
PLATFORMS = (
    Platform(os="linux", architecture="amd64"),
    Platform(os="linux", architecture="arm64"),
    Platform(os="linux", architecture="arm", variant="v7"),
    Platform(os="windows", architecture="amd64"),
)
MANIFEST_TYPES = frozenset(
    {MEDIA_TYPE_OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"}
)


def _check_descriptor(desc: Descriptor) -> None:
    check(is_digest(desc.digest), f"descriptor digest {desc.digest!r} accepted")
    size: object = desc.size  # checked as the parser's caller sees it, not as typed
    media_type: object = desc.media_type
    annotations: list[tuple[object, object]] = list(desc.annotations.items())
    check(type(size) is int and size >= 0, f"descriptor size {size!r} accepted")
    check(isinstance(media_type, str) and bool(media_type), "empty mediaType accepted")
    check(
        all(isinstance(k, str) and isinstance(v, str) for k, v in annotations),
        "non-string annotation accepted",
    )


def descriptor(data: bytes) -> None:
    """``Descriptor.from_json`` on any JSON value; a descriptor must survive its own JSON."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return  # not JSON: the document parsers (index, referrers) own that case
    try:
        desc = Descriptor.from_json(obj)
    except PullgateError:
        return
    _check_descriptor(desc)
    again = Descriptor.from_json(json.loads(json.dumps(desc.to_json())))
    check(again.same_target(desc), "descriptor changed through its JSON form")


def index(data: bytes) -> None:
    """``index_entries`` and the matcher: what is chosen is a listed image manifest, the first
    candidate of containerd's order for the node (nested indexes are not walked here)."""
    try:
        entries = index_entries(data)
    except PullgateError:
        return
    for entry in entries:
        _check_descriptor(entry.descriptor)
    for platform in PLATFORMS:
        for profile in Profile:
            chosen = pick(entries, platform, profile, lambda _nested: ())
            if chosen is None:
                continue
            check(chosen.descriptor.media_type in MANIFEST_TYPES, f"{chosen} selected")
            order = ranked(entries, platform, profile)
            check(bool(order) and order[0] is chosen, f"not the first candidate for {platform}")


def link(data: bytes) -> None:
    """``next_link``: a next page is on the origin that was asked, or there is none."""
    values, answered = split_fields(data, 2)
    where = endpoint()
    requested = f"{where.url}/app/referrers/{sha256(b'')}"
    url = header_text(answered) if answered else requested
    reply = Reply(headers=tuple(("Link", header_text(v)) for v in values.split(b"\n")))
    response = Response(status=200, headers=reply.header_dict(), body=b"", url=url)
    try:
        target = next_link(response, where, requested)
    except PullgateError:
        return
    if target is not None:
        check(same_origin(requested, target), f"next page {target!r} on another origin")


def retry_after(data: bytes) -> None:
    """``parse_retry_after``, alone and in the transport's retry loop: a finite, non-negative
    wait, and never more waiting than the ceiling nor more attempts than the bound."""
    value = header_text(data.split(b"\n", 1)[0])
    try:
        delay = parse_retry_after(value, CLOCK)
    except PullgateError:
        return
    if delay is not None:
        check(math.isfinite(delay) and delay >= 0, f"Retry-After {value!r} read as {delay}")
    throttled = Reply(status=429, headers=(("Retry-After", value),))
    transport = ScriptedTransport(lambda method, url, headers: throttled)
    try:
        transport.request(endpoint(), "GET", f"{endpoint().url}/", cap=1024)
    except PullgateError:
        return
    limits = transport.limits
    check(len(transport.sent) <= limits.max_retries + 1, "retried past the bound")
    check(all(0 <= s <= limits.max_retry_after for s in transport.sleeps), "waited too long")


REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def redirect(data: bytes) -> None:
    """``next_hop``: secrets and bodies stay on the endpoint's origin; only http(s) is followed."""
    first, location = split_fields(data, 2)
    status = REDIRECT_STATUSES[first[0] % len(REDIRECT_STATUSES)] if first else 302
    where = endpoint(headers={"X-Registry-Key": ("secret",)})
    body = b"grant_type=refresh_token" if first[1:2] == b"P" else None
    headers = urllib3.HTTPHeaderDict(
        {"Authorization": "Bearer t", "X-Registry-Key": "secret", "Accept": "*/*"}
    )
    hop = Hop(url=f"{where.url}/app/manifests/v1", method="POST", body=body, headers=headers)
    try:
        following = next_hop(hop, status, header_text(location), where)
    except PullgateError:
        return
    if following is None:
        check(body is not None, "a body-less redirect was not followed")
        return
    check(origin(following.url)[0] in ("http", "https"), f"followed to {following.url!r}")
    if not same_origin(following.url, hop.url):
        check(following.body is None, "a body went to another origin")
        check("Authorization" not in following.headers, "Authorization went to another origin")
        check("X-Registry-Key" not in following.headers, "hosts.toml header went elsewhere")


TARGETS = (
    FuzzTarget("descriptor", "pullgate.common.descriptor.Descriptor.from_json", descriptor),
    FuzzTarget("index", "pullgate.decision.platform.index_entries + matcher.pick", index),
    FuzzTarget("link", "pullgate.registry.source.next_link", link),
    FuzzTarget("retry_after", "pullgate.registry.transport.parse_retry_after", retry_after),
    FuzzTarget("redirect", "pullgate.registry.redirect.next_hop", redirect),
)
