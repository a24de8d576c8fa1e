"""pullgate demo: notation trust config, a signed and an unsigned 2-platform image, allow/deny.

Everything is created under a temporary directory (kept with --keep):

1. a test PKI (root CA -> intermediate -> code-signing leaf) and a notation configuration
   directory (``truststore/x509/ca/demo`` + ``trustpolicy.json``, level strict, identity pinned);
2. an OCI image layout holding two 2-platform images (linux/amd64 + linux/arm64); the first is
   signed in notation's format (JWS for the index, COSE for the platform manifests), the second
   is not;
3. ``pullgate verify`` and ``pullgate inspect`` run as a user would run them, showing the
   decisions and their typed reasons.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.oci_layout import LayoutWriter  # noqa: E402
from tests.support.pki import KeySpec, Pki, write_store  # noqa: E402
from tests.support.signing import sign_cose, sign_jws  # noqa: E402

SCOPE = "registry.demo.example/shop/web"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def pullgate(*args: str) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pullgate", *args]
    print("$ pullgate " + " ".join(args), flush=True)
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    print(f"(exit {proc.returncode})", flush=True)
    return proc.returncode, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description="pullgate demo")
    parser.add_argument("--keep", action="store_true", help="keep the demo directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pullgate-demo-"))
    try:
        step("building a test PKI: root CA -> intermediate CA -> code-signing leaf (EC P-256)")
        pki = Pki(name="demo")
        chain = pki.chain(key=KeySpec.ec(256))
        for issued in chain.certs:
            print(f"    {issued.cert.subject.rfc4514_string()}")

        step("writing a notation configuration directory (trust store + trust policy)")
        trust = work / "notation"
        write_store(trust, "ca", "demo", [chain.root.cert])
        policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "demo-images",
                    "registryScopes": [SCOPE],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:demo"],
                    "trustedIdentities": [
                        "x509.subject: C=US, ST=WA, O=pullgate, CN=pullgate test signer"
                    ],
                }
            ],
        }
        (trust / "trustpolicy.json").write_text(json.dumps(policy, indent=2))
        print(f"    {trust}/trustpolicy.json + truststore/x509/ca/demo/")

        step("creating an OCI image layout with two 2-platform images (amd64 + arm64)")
        layout = LayoutWriter(work / "layout")
        signed_platforms = {
            "linux/amd64": layout.image(content=b"signed-amd64", platform="linux/amd64"),
            "linux/arm64/v8": layout.image(content=b"signed-arm64", platform="linux/arm64/v8"),
        }
        signed = layout.index(signed_platforms, tag="signed")
        unsigned = layout.index(
            {
                "linux/amd64": layout.image(content=b"unsigned-amd64", platform="linux/amd64"),
                "linux/arm64/v8": layout.image(
                    content=b"unsigned-arm64", platform="linux/arm64/v8"
                ),
            },
            tag="unsigned",
        )
        print(f"    signed   index {signed.digest}")
        print(f"    unsigned index {unsigned.digest}")

        step("signing the 'signed' index (JWS) and its platform manifests (COSE), notation format")
        layout.attach_signature(signed, sign_jws(chain, signed), "application/jose+json")
        for desc in signed_platforms.values():
            layout.attach_signature(desc, sign_cose(chain, desc), "application/cose")

        common = ["--trust-dir", str(trust), "--oci-layout", "--scope", SCOPE]
        step("verify the signed image: expect ALLOW (VERIFIED)")
        allow, _ = pullgate("verify", *common, f"{layout.root}:signed")
        step("verify the unsigned image: expect DENY (NO_SIGNATURE)")
        deny, deny_out = pullgate("verify", *common, "--output", "json", f"{layout.root}:unsigned")
        step("inspect the signed image's signatures")
        pullgate("inspect", "--oci-layout", f"{layout.root}:signed")
        step("check the trust configuration")
        pullgate("policy", "check", "--trust-dir", str(trust))

        deny_reason = json.loads(deny_out).get("reason") if deny_out.strip() else None
        ok = allow == 0 and deny == 1 and deny_reason == "NO_SIGNATURE"
        step("demo " + ("succeeded: one allow, one deny" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"\n(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
