"""What signature discovery and per-endpoint fetches need of a registry client: its requests,
not its class. :class:`~pullgate.registry.client.RegistryClient` implements :class:`Wire`;
:mod:`pullgate.registry.source` and :mod:`pullgate.registry.digest_fetch` are written against
it, so the client can import them without an import cycle."""

from __future__ import annotations

from typing import Protocol

from pullgate.common.descriptor import Descriptor
from pullgate.registry.model import Endpoint, ImageReference, RegistryLimits
from pullgate.registry.referrers_memo import ReferrersMemo
from pullgate.registry.transport import Response, Transport

__all__ = ["Wire"]


class Wire(Protocol):
    """Authenticated requests to a registry's endpoints, in containerd's order."""

    limits: RegistryLimits
    referrers_memo: ReferrersMemo
    transport: Transport

    def signature_endpoints(self, ref: ImageReference) -> tuple[Endpoint, ...]:
        """Endpoints used for signature discovery, in the order to ask them."""
        ...

    def url(
        self,
        endpoint: Endpoint,
        ref: ImageReference,
        kind: str,
        name: str,
        query: dict[str, str] | None = None,
    ) -> str:
        """The request URL for ``kind`` (manifests|blobs|referrers|tags) at ``endpoint``."""
        ...

    def exchange(
        self,
        endpoint: Endpoint,
        ref: ImageReference,
        method: str,
        url: str,
        *,
        accept: str | None = None,
        cap: int,
    ) -> Response:
        """One authenticated request (see :meth:`RegistryClient.exchange`)."""
        ...

    def expect_ok(self, response: Response, endpoint: Endpoint) -> None:
        """Raise unless the status is 200."""
        ...

    def fetch_verified(
        self,
        ref: ImageReference,
        desc: Descriptor,
        kind: str,
        cap: int,
        *,
        accept: str | None = None,
        first: Endpoint | None = None,
    ) -> bytes:
        """``desc``'s bytes walking the ``pull`` endpoints, size and digest checked."""
        ...
