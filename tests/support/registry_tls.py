"""TLS material for the test registries: CAs, a server and a client certificate (mutual TLS).

Certificates are built with ``cryptography`` directly because ``tests.support.pki`` makes Notary
code-signing certificates (no subjectAltName, no serverAuth/clientAuth EKU). TLS peers (Go,
OpenSSL) validate against the wall clock, so these certificates are dated from ``datetime.now``
rather than from ``pki.NOW``.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.pki import Chain, Issued, KeySpec, ca_spec, issue


def _tls_leaf(
    issuer: Issued,
    common_name: str,
    *,
    eku: x509.ObjectIdentifier,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
) -> Issued:
    """A TLS leaf (EC P-256, SAN + serverAuth/clientAuth EKU) valid around the real time.

    TLS peers (Go, OpenSSL) validate against the wall clock, so these certificates are dated
    from ``datetime.now`` rather than from ``pki.NOW``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names += [x509.DNSName(name) for name in dns]
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pullgate tests"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    # ``Issued.spec`` only documents how pki.py built a certificate; reuse the CA's spec.
    return Issued(cert, key, issuer.spec)


def _tls_ca(name: str) -> Issued:
    """A fresh CA (its own EC key, so two CAs never validate each other's certificates)."""
    now = datetime.now(UTC)
    spec = ca_spec(name, KeySpec.ec(256)).replace(
        not_before=now - timedelta(days=2), not_after=now + timedelta(days=60)
    )
    return issue(spec, fresh_key=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryPki:
    """TLS material for one or more test registries, written as PEM files into ``directory``.

    Attributes:
        server_ca: issues the server certificate (what clients put in ``ca``).
        server: server certificate for ``IP:127.0.0.1`` and ``DNS:localhost``.
        client_ca: the only CA the registry accepts client certificates from.
        client: client certificate (EKU clientAuth) issued by ``client_ca``.
    """

    directory: Path
    server_ca: Issued
    server: Issued
    client_ca: Issued
    client: Issued

    @classmethod
    def create(cls, directory: Path, name: str = "registry") -> RegistryPki:
        """Build the CAs and leaves and write them under ``directory``."""
        server_ca = _tls_ca(f"pullgate test {name} server CA")
        client_ca = _tls_ca(f"pullgate test {name} client CA")
        server = _tls_leaf(
            server_ca,
            "127.0.0.1",
            eku=ExtendedKeyUsageOID.SERVER_AUTH,
            ips=("127.0.0.1",),
            dns=("localhost",),
        )
        client = _tls_leaf(client_ca, "pullgate test client", eku=ExtendedKeyUsageOID.CLIENT_AUTH)
        out = cls(
            directory=directory,
            server_ca=server_ca,
            server=server,
            client_ca=client_ca,
            client=client,
        )
        directory.mkdir(parents=True, exist_ok=True)
        out.ca_pem.write_bytes(server_ca.pem)
        out.server_pem.write_bytes(server.pem + server_ca.pem)
        out.server_key.write_bytes(server.key_pem())
        out.client_ca_pem.write_bytes(client_ca.pem)
        out.client_pem.write_bytes(client.pem)
        out.client_key.write_bytes(client.key_pem())
        out.client_combined_pem.write_bytes(client.pem + client.key_pem())
        for key_file in (out.server_key, out.client_key, out.client_combined_pem):
            key_file.chmod(0o600)
        return out

    @property
    def ca_pem(self) -> Path:
        """The CA that issued the server certificate."""
        return self.directory / "ca.pem"

    @property
    def server_pem(self) -> Path:
        """Server certificate followed by its CA."""
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        """Server private key."""
        return self.directory / "server.key"

    @property
    def client_ca_pem(self) -> Path:
        """The CA the registry requires client certificates from."""
        return self.directory / "client-ca.pem"

    @property
    def client_pem(self) -> Path:
        """Client certificate (PEM, certificate only)."""
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        """Client private key (PKCS#8 PEM)."""
        return self.directory / "client.key"

    @property
    def client_combined_pem(self) -> Path:
        """Client certificate and key in one PEM (hosts.toml ``client = "file"`` form)."""
        return self.directory / "client-combined.pem"

    @property
    def client_chain(self) -> Chain:
        """Client leaf -> client CA, as ``tests.support.pki`` objects."""
        return Chain((self.client, self.client_ca))

    def ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        """A client context trusting ``server_ca``, presenting the client certificate if asked."""
        ctx = ssl.create_default_context(cafile=str(self.ca_pem))
        if client_cert:
            ctx.load_cert_chain(str(self.client_pem), str(self.client_key))
        return ctx
