"""Property tests: hostile OCI layouts give typed errors, never crashes and never an allow.

Three shapes of bad input: arbitrary bytes in ``index.json`` / ``oci-layout``; structurally mutated
JSON documents (a random node replaced by a random JSON value); and mutated signature manifests
that are re-hashed so every digest matches (the layout is self-consistent but says something
else). For the last shape, an allow is only acceptable when the mutation left the envelope and
the subject untouched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mutate import json_paths, replace_at
from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError
from pullgate.oci.layout import LayoutReference, OciLayout, open_layout
from pullgate.verification.cache import CertMemo
from pullgate.verification.model import MEDIA_TYPE_JWS
from pullgate.verification.policy import parse_oci_policy
from pullgate.verification.revocation import RevocationStatus, StaticRevocationChecker
from pullgate.verification.truststore import TrustStore
from pullgate.verification.verifier import Verifier
from tests.support.oci_layout import LayoutWriter
from tests.support.pki import NOW, KeySpec, Pki, write_store
from tests.support.signing import sign_jws

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Template:
    """A valid layout (one image, one JWS signature) built once and copied per example."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pullgate-fuzz-"))
        chain = Pki(name="fuzz").chain(key=KeySpec.ec(256))
        self.trust = self.base / "trust"
        write_store(self.trust, "ca", "main", [chain.root.cert])
        writer = LayoutWriter(self.base / "layout")
        self.image = writer.image(content=b"fuzz", tag="v1")
        self.envelope = sign_jws(chain, self.image)
        self.signature = writer.attach_signature(self.image, self.envelope, MEDIA_TYPE_JWS)
        policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "fuzz",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:main"],
                    "trustedIdentities": ["*"],
                }
            ],
        }
        self.statement = parse_oci_policy(json.dumps(policy).encode()).statements[0]

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.base / "layout", dest)
        return dest


@pytest.fixture(scope="module")
def template() -> Iterator[Template]:
    t = Template()
    yield t
    shutil.rmtree(t.base, ignore_errors=True)


def _exercise(root: Path, target: Descriptor | None = None) -> list[bytes]:
    """Open, resolve and list signatures; only PullgateError may escape."""
    envelopes: list[bytes] = []
    try:
        layout = open_layout(root)
        resolved = layout.resolve(LayoutReference(path=root, tag="v1"))
        for desc in layout.manifests():
            assert desc.digest.startswith("sha")
        for blob in layout.signatures(target or resolved):
            envelopes.append(blob.envelope)
    except PullgateError:
        pass
    return envelopes


@FUZZ
@given(data=st.binary(max_size=300), which=st.sampled_from(["index.json", "oci-layout"]))
def test_arbitrary_bytes_in_layout_files(template: Template, data: bytes, which: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = template.copy(Path(tmp) / "l")
        (root / which).write_bytes(data)
        _exercise(root)


@FUZZ
@given(choice=st.integers(min_value=0), value=json_values)
def test_mutated_index_json(template: Template, choice: int, value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = template.copy(Path(tmp) / "l")
        doc = json.loads((root / "index.json").read_text())
        paths = list(json_paths(doc))
        mutated = replace_at(doc, paths[choice % len(paths)], value)
        (root / "index.json").write_text(json.dumps(mutated))
        _exercise(root, template.image)


@FUZZ
@given(choice=st.integers(min_value=0), value=json_values)
def test_rehashed_mutated_signature_manifest_never_wrongly_allows(
    template: Template, choice: int, value: Any
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = template.copy(Path(tmp) / "l")
        blobs = root / "blobs" / "sha256"
        original = json.loads((blobs / template.signature.digest[7:]).read_bytes())
        paths = list(json_paths(original))
        path = paths[choice % len(paths)]
        mutated = replace_at(original, path, value)
        raw = json.dumps(mutated).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        (blobs / digest[7:]).write_bytes(raw)
        index = json.loads((root / "index.json").read_text())
        for entry in index["manifests"]:
            if entry["digest"] == template.signature.digest:
                entry["digest"], entry["size"] = digest, len(raw)
        (root / "index.json").write_text(json.dumps(index))
        try:
            layout = OciLayout(root)
            verifier = Verifier(
                trust_store=TrustStore(template.trust),
                revocation=StaticRevocationChecker(RevocationStatus.GOOD),
                clock=FixedClock(NOW),
                memo=CertMemo(),
            )
            outcome = verifier.verify_artifact(
                reference=f"fuzz.example/app@{template.image.digest}",
                target=template.image,
                statement=template.statement,
                source=layout,
            )
        except PullgateError:
            return
        if outcome.allowed:
            # Only neutral mutations may still verify: same subject, same single envelope layer.
            assert mutated.get("subject") == original["subject"]
            assert mutated.get("layers") == original["layers"]


@FUZZ
@given(text=st.text(max_size=80))
def test_layout_reference_parse(text: str) -> None:
    try:
        ref = LayoutReference.parse(text)
    except PullgateError:
        return
    assert (ref.tag is None) != (ref.digest is None)
