"""An OCI image layout as a :class:`~pullgate.registry.store.Store` (``pullgate verify
--oci-layout``): the decision engine reads a layout exactly as it reads a registry.

The reference's registry and repository only name the trust-policy scope (``--scope``); its tag
or digest is looked up in the layout (:meth:`~pullgate.oci.layout.OciLayout.resolve`). Every byte
is size- and digest-checked by :class:`~pullgate.oci.layout.OciLayout`.
"""

from __future__ import annotations

from collections.abc import Iterator

from pullgate.common.descriptor import Descriptor
from pullgate.oci.layout import MAX_MANIFEST_BYTES, LayoutReference, OciLayout
from pullgate.registry.model import ImageReference
from pullgate.registry.store import LocalSession
from pullgate.verification.verifier import SignatureBlob

__all__ = ["LayoutStore"]


class LayoutStore(LocalSession):
    """The :class:`~pullgate.registry.store.Store` protocol over one :class:`OciLayout`."""

    def __init__(self, layout: OciLayout) -> None:
        self._layout = layout

    def __repr__(self) -> str:
        return f"LayoutStore({self._layout.root})"

    def close(self) -> None:
        """Nothing stays open between reads."""

    def resolve(self, ref: ImageReference) -> Descriptor:
        """``ref``'s digest or tag, looked up in the layout's ``index.json``."""
        root = self._layout.root
        wanted = LayoutReference(path=root, digest=ref.digest, tag=None if ref.digest else ref.tag)
        return self._layout.resolve(wanted)

    def _read(self, desc: Descriptor, cap: int) -> bytes:
        return self.timed(lambda: self._layout.read_blob(desc, cap))

    def fetch_manifest(self, ref: ImageReference, desc: Descriptor) -> bytes:
        """Manifest or index ``desc`` (≤ 4 MiB)."""
        return self._read(desc, MAX_MANIFEST_BYTES)

    def fetch_blob(self, ref: ImageReference, desc: Descriptor, cap: int) -> bytes:
        """Blob ``desc`` (≤ ``cap`` bytes)."""
        return self._read(desc, cap)

    def signatures(self, ref: ImageReference, target: Descriptor) -> Iterator[SignatureBlob]:
        """The layout's Notary signatures of ``target`` (subject match, layout order)."""
        return self._layout.signatures(target)
