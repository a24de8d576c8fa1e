"""One fetch by digest at one endpoint: capped at the descriptor's size, size and digest
checked (see :meth:`pullgate.registry.client.RegistryClient.fetch_verified`)."""

from __future__ import annotations

from pullgate.common.descriptor import Descriptor, check_digest
from pullgate.errors import Reason, VerificationFailed
from pullgate.registry.model import Endpoint, ImageReference
from pullgate.registry.transport import ResponseTooLarge
from pullgate.registry.wire import Wire

__all__ = ["DescriptorMismatch", "fetch_at"]


class DescriptorMismatch(VerificationFailed):
    """Content fetched by digest is not the size its descriptor declares (definitive)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.DESCRIPTOR_MISMATCH, detail)


def fetch_at(
    client: Wire,
    endpoint: Endpoint,
    ref: ImageReference,
    desc: Descriptor,
    kind: str,
    accept: str | None,
    fallbacks: int,
) -> bytes:
    """``desc``'s bytes from ``endpoint`` (``fallbacks``: endpoints still to try after it).

    Raises:
        DescriptorMismatch: A body of another size than ``desc`` says (read no further than
            ``desc.size + 1`` bytes).
        MalformedInput: The bytes do not hash to ``desc.digest``.
        RegistryError: Transport or HTTP failure (``HttpStatusError`` for a status).
    """
    url = client.url(endpoint, ref, kind, desc.digest)
    try:
        # Capped at the declared size: a longer body is refused after size + 1 bytes, never
        # read up to the kind's general limit.
        with client.transport.attempt(fallbacks):
            response = client.exchange(endpoint, ref, "GET", url, accept=accept, cap=desc.size)
    except ResponseTooLarge as exc:
        raise DescriptorMismatch(
            f"endpoint {endpoint.url}: {desc.digest} is longer than the "
            f"{desc.size} bytes its descriptor says"
        ) from exc
    client.expect_ok(response, endpoint)
    if len(response.body) != desc.size:
        raise DescriptorMismatch(
            f"endpoint {endpoint.url}: {desc.digest} is {len(response.body)} bytes, "
            f"descriptor says {desc.size}"
        )
    check_digest(response.body, desc.digest)
    return response.body
