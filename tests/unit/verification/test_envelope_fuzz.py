"""Property tests: envelope decoding never escapes the typed error tree (docs/notation.md §3-§5).

Arbitrary bytes and single-byte mutations of valid JWS/COSE envelopes must either raise a
``PullgateError`` or, when the mutation is semantically neutral (an unsigned header byte, JSON
key case), verify to the same signed content as the original.
"""

from __future__ import annotations

import base64
import contextlib
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError
from pullgate.verification.envelope import parse_envelope, verify_envelope
from pullgate.verification.model import MEDIA_TYPE_COSE, MEDIA_TYPE_JWS, EnvelopeContent
from tests.support.pki import NOW, KeySpec, Pki
from tests.support.signing import sign_cose, sign_jws

TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:" + "cd" * 32,
    size=99,
)
MEDIA_TYPES = st.sampled_from([MEDIA_TYPE_JWS, MEDIA_TYPE_COSE])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _envelopes() -> dict[str, tuple[bytes, EnvelopeContent]]:
    chain = Pki().chain(key=KeySpec.ec(256), depth=2)
    out = {}
    for media_type, signer in ((MEDIA_TYPE_JWS, sign_jws), (MEDIA_TYPE_COSE, sign_cose)):
        envelope = signer(chain, TARGET, expiry=NOW.replace(year=2027), timestamper=lambda s: s)
        out[media_type] = (envelope, verify_envelope(media_type, envelope))
    return out


def _signed_view(content: EnvelopeContent) -> tuple[object, ...]:
    return (
        content.format,
        content.algorithm,
        content.scheme,
        content.signing_time,
        content.expiry,
        content.payload,
        content.critical,
        dict(content.extended_attributes),
        content.content_type,
        content.certificates,
    )


@FUZZ
@given(media_type=MEDIA_TYPES, data=st.binary(max_size=512))
def test_arbitrary_bytes_raise_typed_errors(media_type: str, data: bytes) -> None:
    for entry in (parse_envelope, verify_envelope):
        try:
            entry(media_type, data)
        except PullgateError:
            continue
        raise AssertionError("arbitrary bytes were accepted")


@FUZZ
@given(media_type=MEDIA_TYPES, data=st.data())
def test_mutated_envelopes_fail_or_are_neutral(media_type: str, data: st.DataObject) -> None:
    envelope, original = _envelopes()[media_type]
    position = data.draw(st.integers(min_value=0, max_value=len(envelope) - 1))
    kind = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    if kind == "replace":
        value = data.draw(
            st.integers(min_value=0, max_value=255).filter(lambda b: b != envelope[position])
        )
        mutated = envelope[:position] + bytes([value]) + envelope[position + 1 :]
    elif kind == "delete":
        mutated = envelope[:position] + envelope[position + 1 :]
    else:
        value = data.draw(st.integers(min_value=0, max_value=255))
        mutated = envelope[:position] + bytes([value]) + envelope[position:]
    with contextlib.suppress(PullgateError):
        parse_envelope(media_type, mutated)
    try:
        content = verify_envelope(media_type, mutated)
    except PullgateError:
        return
    assert _signed_view(content) == _signed_view(original)


@FUZZ
@given(media_type=MEDIA_TYPES, bit=st.integers(min_value=0, max_value=8 * 64 - 1))
def test_flipped_signature_bit_never_verifies(media_type: str, bit: int) -> None:
    envelope, original = _envelopes()[media_type]
    signature = bytearray(original.raw_signature)
    signature[bit // 8] ^= 1 << (bit % 8)
    if media_type == MEDIA_TYPE_COSE:
        mutated = envelope.replace(original.raw_signature, bytes(signature))
    else:

        def b64(raw: bytes) -> bytes:
            return base64.urlsafe_b64encode(raw).rstrip(b"=")

        mutated = envelope.replace(b64(original.raw_signature), b64(bytes(signature)))
    assert mutated != envelope
    try:
        verify_envelope(media_type, mutated)
    except PullgateError:
        return
    raise AssertionError("a flipped signature bit verified")
