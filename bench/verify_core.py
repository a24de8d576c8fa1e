"""Cost of pullgate's full per-signature verification relative to the bare signature check.

For RSA-2048, RSA-3072, P-256 and P-384 leaves (3-certificate chain, level strict), measures in
one run, interleaved:

* full: ``Verifier.verify_signature`` — envelope parse, signature check, header rules, chain shape
  (two more signature checks), trust anchor and identity, expiry, validity, revocation lookup
  (the chain carries no OCSP/CRL URL), descriptor and metadata checks;
* bare: ``cryptography``'s verify of the same signature over the same signing input.

Prints the ratio full / bare per algorithm and envelope format. Absolute times are printed for
context only; machines here are noisy, the ratio is what is compared. Exit status 1 when a ratio
exceeds the target (10x).

Run: ``make bench`` or ``.venv/bin/python bench/verify_core.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.pki import NOW, KeySpec, Pki, write_store  # noqa: E402
from tests.support.signing import sign_cose, sign_jws  # noqa: E402

from pullgate.clock import FixedClock  # noqa: E402
from pullgate.descriptor import Descriptor  # noqa: E402
from pullgate.verification.outcome import CheckResult  # noqa: E402
from pullgate.verification.policy import parse_oci_policy  # noqa: E402
from pullgate.verification.revocation import (  # noqa: E402
    NetworkRevocationChecker,
    RevocationFetchError,
)
from pullgate.verification.truststore import TrustStore  # noqa: E402
from pullgate.verification.verifier import SignatureBlob, Verifier  # noqa: E402

TARGET_RATIO = 10.0
TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:" + "ab" * 32,
    size=1234,
)
HASHES: dict[str, hashes.HashAlgorithm] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}


class NoNetwork:
    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        raise RevocationFetchError(f"bench has no network: {url}")

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> bytes:
        raise RevocationFetchError(f"bench has no network: {url}")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bare_jws(envelope: bytes, public_key: object) -> Callable[[], None]:
    doc = json.loads(envelope)
    signing_input = f"{doc['protected']}.{doc['payload']}".encode()
    signature = _b64url(doc["signature"])
    alg = json.loads(_b64url(doc["protected"]))["alg"]
    return _bare(alg, public_key, signature, signing_input, salt_auto=True)


def bare_cose(envelope: bytes, public_key: object) -> Callable[[], None]:
    tag = cbor2.loads(envelope)
    protected, _unprotected, payload, signature = tag.value
    alg_id = cbor2.loads(protected)[1]
    alg = {-37: "PS256", -38: "PS384", -39: "PS512", -7: "ES256", -35: "ES384", -36: "ES512"}[
        alg_id
    ]
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    return _bare(alg, public_key, signature, to_be_signed, salt_auto=False)


def _bare(
    alg: str, public_key: object, signature: bytes, data: bytes, *, salt_auto: bool
) -> Callable[[], None]:
    digest = HASHES[alg[2:]]
    if isinstance(public_key, rsa.RSAPublicKey):
        salt = padding.PSS.AUTO if salt_auto else digest.digest_size
        pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=salt)
        rsa_key = public_key

        def run_rsa() -> None:
            rsa_key.verify(signature, data, pad, digest)

        return run_rsa
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    half = len(signature) // 2
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )
    ec_key = public_key

    def run_ec() -> None:
        # The DER conversion is part of verifying a raw r||s signature with cryptography.
        ec_key.verify(der, data, ec.ECDSA(digest))

    return run_ec


def measure(fn: Callable[[], object], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="calls per timing sample")
    parser.add_argument("--samples", type=int, default=7, help="interleaved samples (min taken)")
    args = parser.parse_args()

    keys = {
        "RSA-2048": KeySpec.rsa(2048),
        "RSA-3072": KeySpec.rsa(3072),
        "P-256": KeySpec.ec(256),
        "P-384": KeySpec.ec(384),
    }
    worst = 0.0
    print(f"{'algorithm':<10} {'format':<5} {'full µs':>9} {'bare µs':>9} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        trust_dir = Path(tmp)
        pki = Pki(name="bench")
        chains = {name: pki.chain(key=spec, depth=3) for name, spec in keys.items()}
        write_store(trust_dir, "ca", "bench", [c.root.cert for c in chains.values()])
        policy = parse_oci_policy(
            json.dumps(
                {
                    "version": "1.0",
                    "trustPolicies": [
                        {
                            "name": "bench",
                            "registryScopes": ["*"],
                            "signatureVerification": {"level": "strict"},
                            "trustStores": ["ca:bench"],
                            "trustedIdentities": [
                                "x509.subject: C=US, ST=WA, O=pullgate, CN=pullgate test signer"
                            ],
                        }
                    ],
                }
            ).encode()
        )
        statement = policy.statements[0]
        verifier = Verifier(
            trust_store=TrustStore(trust_dir),
            revocation=NetworkRevocationChecker(NoNetwork(), FixedClock(NOW)),
            clock=FixedClock(NOW),
        )

        def target_check(content: object) -> CheckResult:
            return verifier._check_descriptor(content, TARGET)  # type: ignore[arg-type]

        for name, chain in chains.items():
            for fmt, signer, media_type, bare_of in (
                ("JWS", sign_jws, "application/jose+json", bare_jws),
                ("COSE", sign_cose, "application/cose", bare_cose),
            ):
                envelope = signer(chain, TARGET)
                blob = SignatureBlob(
                    manifest_digest="sha256:" + "cd" * 32, media_type=media_type, envelope=envelope
                )

                def full(blob: SignatureBlob = blob) -> None:
                    outcome = verifier.verify_signature(
                        blob, statement=statement, target_check=target_check, user_metadata={}
                    )
                    if not outcome.passed:
                        raise SystemExit(f"bench signature did not verify: {outcome}")

                bare = bare_of(envelope, chain.leaf.cert.public_key())
                full()
                bare()
                full_times, bare_times = [], []
                for _ in range(args.samples):
                    full_times.append(measure(full, args.rounds))
                    bare_times.append(measure(bare, args.rounds))
                f, b = min(full_times), min(bare_times)
                ratio = f / b
                worst = max(worst, ratio)
                print(f"{name:<10} {fmt:<5} {f * 1e6:>9.1f} {b * 1e6:>9.1f} {ratio:>6.2f}x")
    verdict = "OK" if worst <= TARGET_RATIO else "ABOVE TARGET"
    print(f"worst ratio {worst:.2f}x (target <= {TARGET_RATIO:.0f}x): {verdict}")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
