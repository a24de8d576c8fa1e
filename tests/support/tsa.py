"""An in-process RFC 3161 TSA (asn1crypto + cryptography) and an ``openssl ts -reply`` wrapper.

``TestTsa(chain).timestamp(message, gen_time=...)`` returns a DER ``TimeStampToken``
(``ContentInfo``/``SignedData`` over a ``TSTInfo``, ESS ``signingCertificateV2``, the TSA
chain embedded). The keyword knobs produce the malformed variants the timestamp tests need.
:func:`openssl_ts_reply` gets a token from the real OpenSSL TSA for interoperability tests.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.support.pki import Chain

ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
ID_DATA = "1.2.840.113549.1.7.1"
ETSI_BASELINE_POLICY = "0.4.0.2023.1.1"
TEST_POLICY = "1.3.6.1.4.1.99999.1"

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - only to build deliberately bad tokens
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenOptions:
    """Mutation knobs; the defaults produce a well-formed token."""

    hash_name: str = "sha256"
    accuracy_seconds: int | None = 1
    accuracy_millis: int | None = None
    policy: str = TEST_POLICY
    version: int = 1
    content_type: str = ID_CT_TSTINFO
    include_certs: bool = True
    ess: Literal["v2", "v1", "none"] = "v2"
    ess_hash: str = "sha256"
    ess_cert_hash: bytes | None = None
    signer_digest: str = "sha256"
    content_type_attr: bool = True
    message_digest_attr: bool = True
    corrupt_signature: bool = False
    imprint: bytes | None = None


class TestTsa:
    """Issues timestamp tokens signed by ``chain.leaf`` (pytest: not a test class)."""

    __test__ = False

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._serial = 0

    def timestamp(
        self,
        message: bytes,
        *,
        gen_time: datetime,
        hash_name: str = "sha256",
        accuracy_seconds: int | None = 1,
        options: TokenOptions | None = None,
    ) -> bytes:
        """A DER ``TimeStampToken`` over ``message`` (the raw signature bytes).

        ``hash_name``/``accuracy_seconds`` override the corresponding ``options`` fields.
        """
        opts = options or TokenOptions()
        self._serial += 1
        imprint = opts.imprint
        if imprint is None:
            imprint = hashlib.new(hash_name, message).digest()
        accuracy: dict[str, int] = {}
        if accuracy_seconds is not None:
            accuracy["seconds"] = accuracy_seconds
        if opts.accuracy_millis is not None:
            accuracy["millis"] = opts.accuracy_millis
        tst_fields: dict[str, object] = {
            "version": opts.version,
            "policy": opts.policy,
            "message_imprint": {
                "hash_algorithm": {"algorithm": hash_name},
                "hashed_message": imprint,
            },
            "serial_number": self._serial,
            "gen_time": core.GeneralizedTime(gen_time),
        }
        if accuracy:
            tst_fields["accuracy"] = accuracy
        tst_der = tsp.TSTInfo(tst_fields).dump()
        return self._sign(tst_der, opts)

    def _sign(self, tst_der: bytes, opts: TokenOptions) -> bytes:
        leaf = self.chain.leaf
        leaf_asn1 = asn1_x509.Certificate.load(leaf.der)
        attrs: list[dict[str, object]] = []
        if opts.content_type_attr:
            attrs.append({"type": "content_type", "values": [opts.content_type]})
        if opts.message_digest_attr:
            digest = hashlib.new(opts.signer_digest, tst_der).digest()
            attrs.append({"type": "message_digest", "values": [digest]})
        cert_hash = opts.ess_cert_hash or hashlib.new(opts.ess_hash, leaf.der).digest()
        issuer_serial = {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=leaf_asn1.issuer)],
            "serial_number": leaf.cert.serial_number,
        }
        if opts.ess == "v2":
            ess_v2 = {
                "hash_algorithm": {"algorithm": opts.ess_hash},
                "cert_hash": cert_hash,
                "issuer_serial": issuer_serial,
            }
            attrs.append({"type": "signing_certificate_v2", "values": [{"certs": [ess_v2]}]})
        elif opts.ess == "v1":
            sha1 = hashlib.sha1(leaf.der).digest()  # noqa: S324 - ESS v1 is SHA-1 by definition
            ess_v1 = {"cert_hash": sha1, "issuer_serial": issuer_serial}
            attrs.append({"type": "signing_certificate", "values": [{"certs": [ess_v1]}]})
        signed_attrs = cms.CMSAttributes(attrs)
        to_sign = signed_attrs.untag().dump(force=True)
        signature, sig_alg = _sign_bytes(leaf.key, to_sign, opts.signer_digest)
        if opts.corrupt_signature:
            signature = bytes([signature[0] ^ 0x01]) + signature[1:]
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={"issuer": leaf_asn1.issuer, "serial_number": leaf.cert.serial_number},
                ),
                "digest_algorithm": {"algorithm": opts.signer_digest},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": sig_alg},
                "signature": signature,
            }
        )
        certificates = (
            [asn1_x509.Certificate.load(c.der) for c in self.chain.certs]
            if opts.include_certs
            else None
        )
        signed_data: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": opts.signer_digest}],
            "encap_content_info": {
                "content_type": opts.content_type,
                "content": core.ParsableOctetString(tst_der),
            },
            "signer_infos": [signer_info],
        }
        if certificates is not None:
            signed_data["certificates"] = certificates
        content_info = cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        )
        der: bytes = content_info.dump()
        return der


def _sign_bytes(key: object, data: bytes, digest: str) -> tuple[bytes, str]:
    hash_alg = _HASHES[digest]
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hash_alg), f"{digest}_rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hash_alg)), f"{digest}_ecdsa"
    raise TypeError(type(key).__name__)


_OPENSSL_TS_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {workdir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/chain.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl_ts_reply(
    chain: Chain, message: bytes, workdir: Path, *, hash_name: str = "sha256"
) -> bytes:
    """A DER ``TimeStampToken`` over ``message`` from the real ``openssl ts -reply``.

    genTime is the real current time. ``workdir`` must be an empty, writable directory.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "serial").write_text("01\n")
    (workdir / "tsa.pem").write_bytes(chain.leaf.pem)
    (workdir / "tsa.key").write_bytes(chain.leaf.key_pem())
    (workdir / "chain.pem").write_bytes(b"".join(c.pem for c in chain.certs[1:]))
    (workdir / "message.bin").write_bytes(message)
    config = workdir / "tsa.cnf"
    config.write_text(_OPENSSL_TS_CONFIG.format(workdir=workdir, policy=TEST_POLICY))
    query = workdir / "request.tsq"
    token = workdir / "token.der"
    subprocess.run(
        [
            "openssl",
            "ts",
            "-query",
            "-data",
            str(workdir / "message.bin"),
            f"-{hash_name}",
            "-cert",
            "-no_nonce",
            "-out",
            str(query),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    subprocess.run(
        [
            "openssl",
            "ts",
            "-reply",
            "-config",
            str(config),
            "-queryfile",
            str(query),
            "-token_out",
            "-out",
            str(token),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return token.read_bytes()


__all__ = [
    "ETSI_BASELINE_POLICY",
    "ID_CT_TSTINFO",
    "ID_DATA",
    "TEST_POLICY",
    "TestTsa",
    "TokenOptions",
    "openssl_ts_reply",
]
