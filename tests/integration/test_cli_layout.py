"""``pullgate verify / inspect / policy check`` end to end over OCI image layouts.

Signatures are produced by the test signer in notation's format and attached in both manifest
forms; the CLI runs in-process through ``pullgate.cli.main.main`` and is judged by exit code and the
typed ``reason`` of its JSON decision object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pullgate.cli.main import main
from pullgate.common.descriptor import Descriptor
from tests.support.oci_layout import LayoutWriter
from tests.support.pki import CertSpec, Chain, KeySpec, Pki, write_store
from tests.support.signing import sign_cose, sign_jws

SCOPE = "registry.example/team/app"
JWS = "application/jose+json"
COSE = "application/cose"


def _policy(level: str = "strict", scopes: list[str] | None = None) -> dict[str, Any]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "app",
                "registryScopes": scopes or [SCOPE],
                "signatureVerification": {"level": level},
                "trustStores": ["ca:app"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=pullgate"],
            }
        ],
    }


@dataclass
class Env:
    tmp: Path
    trust_dir: Path
    layout: LayoutWriter
    chain: Chain
    image: Descriptor

    def run(self, *argv: str) -> tuple[int, dict[str, Any]]:
        return run_json(self.trust_dir, list(argv))


def run_json(trust_dir: Path, argv: list[str]) -> tuple[int, dict[str, Any]]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["verify", "--trust-dir", str(trust_dir), "--output", "json", *argv])
    out = buf.getvalue()
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    pki = Pki(name="cli")
    chain = pki.chain(key=KeySpec.ec(256))
    trust_dir = tmp_path / "trust"
    write_store(trust_dir, "ca", "app", [chain.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(_policy()))
    layout = LayoutWriter(tmp_path / "layout")
    image = layout.image(content=b"app", tag="v1")
    return Env(tmp_path, trust_dir, layout, chain, image)


def _ref(env: Env, desc: Descriptor) -> list[str]:
    return ["--oci-layout", "--scope", SCOPE, f"{env.layout.root}@{desc.digest}"]


@pytest.mark.parametrize("legacy", [False, True], ids=["artifactType", "legacy-config"])
@pytest.mark.parametrize(("signer", "media_type"), [(sign_jws, JWS), (sign_cose, COSE)])
def test_signed_image_is_allowed(
    env: Env, legacy: bool, signer: Callable[..., bytes], media_type: str
) -> None:
    env.layout.attach_signature(env.image, signer(env.chain, env.image), media_type, legacy=legacy)
    code, doc = env.run(*_ref(env, env.image))
    assert code == 0
    assert doc["decision"] == "allow"
    assert doc["reason"] == "VERIFIED"
    assert doc["digest"] == env.image.digest
    assert doc["subjects"][0]["verified"] is True


def test_tag_reference_resolves_through_index_json(env: Env) -> None:
    env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS)
    code, doc = env.run("--oci-layout", "--scope", SCOPE, f"{env.layout.root}:v1")
    assert (code, doc["reason"]) == (0, "VERIFIED")


def test_unsigned_image_is_denied(env: Env) -> None:
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["decision"], doc["reason"]) == (1, "deny", "NO_SIGNATURE")


def test_signature_for_other_artifact_is_not_discovered(env: Env) -> None:
    other = env.layout.image(content=b"other", tag="v2")
    env.layout.attach_signature(other, sign_jws(env.chain, other), JWS)
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "NO_SIGNATURE")


def test_artifact_type_with_wrong_config_is_skipped(env: Env) -> None:
    env.layout.attach_signature(
        env.image,
        sign_jws(env.chain, env.image),
        JWS,
        config_media_type="application/vnd.oci.image.config.v1+json",
    )
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "NO_SIGNATURE")


def test_untrusted_signer_is_denied(env: Env) -> None:
    stranger = Pki(name="stranger").chain(
        key=KeySpec.ec(256, slot=3),
        root=CertSpec(
            common_name="stranger root",
            key=KeySpec.rsa(2048, slot=9),
            ca=True,
            key_usage=frozenset({"key_cert_sign", "crl_sign"}),
            eku=None,
        ),
    )
    env.layout.attach_signature(env.image, sign_jws(stranger, env.image), JWS)
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "UNTRUSTED")


def test_first_passing_signature_wins(env: Env) -> None:
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=4), depth=1)
    env.layout.attach_signature(env.image, sign_jws(stranger, env.image), JWS)
    env.layout.attach_signature(env.image, sign_cose(env.chain, env.image), COSE)
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (0, "VERIFIED")
    sigs = doc["subjects"][0]["signatures"]
    assert [s["verified"] for s in sigs] == [False, True]


def test_max_signatures_bound(env: Env) -> None:
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=4), depth=1)
    for _ in range(3):
        env.layout.attach_signature(env.image, sign_jws(stranger, env.image), JWS)
    env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS)
    code, doc = env.run("--max-signatures", "2", *_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "TOO_MANY_SIGNATURES")
    code, doc = env.run("--max-signatures", "10", *_ref(env, env.image))
    assert (code, doc["reason"]) == (0, "VERIFIED")


def test_two_layer_signature_manifest_is_malformed(env: Env) -> None:
    env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS, extra_layers=1)
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "MALFORMED")


def test_tampered_envelope_blob_is_malformed(env: Env) -> None:
    sig = env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS)
    manifest = json.loads((env.layout.root / "blobs/sha256" / sig.digest[7:]).read_bytes())
    layer = manifest["layers"][0]["digest"][7:]
    path = env.layout.root / "blobs/sha256" / layer
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "MALFORMED")


def test_user_metadata(env: Env) -> None:
    env.layout.attach_signature(
        env.image, sign_jws(env.chain, env.image, annotations={"build": "42"}), JWS
    )
    assert env.run("-m", "build=42", *_ref(env, env.image))[0] == 0
    code, doc = env.run("-m", "build=43", *_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "USER_METADATA")


def test_no_applicable_policy(env: Env) -> None:
    env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS)
    code, doc = env.run("--oci-layout", "--scope", "other.example/x", f"{env.layout.root}:v1")
    assert (code, doc["reason"]) == (1, "NO_POLICY")


def test_skip_level(env: Env) -> None:
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "skip",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "skip"},
            }
        ],
    }
    (env.trust_dir / "trustpolicy.json").write_text(json.dumps(policy))
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (0, "SKIPPED_BY_POLICY")


def test_broken_policy_is_a_configuration_error(env: Env) -> None:
    (env.trust_dir / "trustpolicy.json").write_text("{not json")
    code, _ = env.run(*_ref(env, env.image))
    assert code == 2


def test_oci_json_takes_precedence(env: Env) -> None:
    env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS)
    (env.trust_dir / "trustpolicy.oci.json").write_text(
        json.dumps(_policy(scopes=["elsewhere.example/app"]))
    )
    code, doc = env.run(*_ref(env, env.image))
    assert (code, doc["reason"]) == (1, "NO_POLICY")


def test_missing_layout_is_denied_malformed(env: Env) -> None:
    code, doc = env.run("--oci-layout", "--scope", SCOPE, f"{env.tmp}/nope@{env.image.digest}")
    assert (code, doc["reason"]) == (1, "MALFORMED")


def test_usage_errors_exit_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--oci-layout", f"{env.layout.root}:v1"])  # no --scope
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["verify", "-m", "novalue", "--oci-layout", "--scope", SCOPE, "x:v1"])
    assert exc.value.code == 2


def test_policy_check_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    doc = _policy()
    doc["trustPolicies"][0]["trustStores"] = ["ca:missing"]
    doc["trustPolicies"].append(dict(doc["trustPolicies"][0]))  # duplicate name and scope
    (trust / "trustpolicy.json").write_text(json.dumps(doc))
    assert main(["policy", "check", "--trust-dir", str(trust)]) == 2
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.strip()]) >= 2


def test_policy_check_ok(env: Env) -> None:
    assert main(["policy", "check", "--trust-dir", str(env.trust_dir)]) == 0


def test_inspect_json_and_tree(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.layout.attach_signature(env.image, sign_jws(env.chain, env.image), JWS)
    env.layout.attach_signature(env.image, sign_cose(env.chain, env.image), COSE)
    ref = f"{env.layout.root}@{env.image.digest}"
    assert main(["inspect", "--oci-layout", "--output", "json", ref]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["signatureEnvelopeType"] for s in doc["signatures"]] == [JWS, COSE]
    first = doc["signatures"][0]
    assert first["signatureAlgorithm"] == "ECDSA-SHA-256"
    assert first["signedArtifact"]["digest"] == env.image.digest
    assert len(first["certificates"]) == 3
    assert first["signedAttributes"]["signingScheme"] == "notary.x509"
    assert main(["inspect", "--oci-layout", ref]) == 0
    assert env.image.digest in capsys.readouterr().out
