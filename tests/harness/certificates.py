"""Self-signed X.509 certificates for tests: a TLS server's or a controller's, as PEM."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

# Valid a little before now: a clock that is a few seconds behind still accepts it.
BACKDATE = datetime.timedelta(minutes=5)


def self_signed_certificate(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str,
    valid_for: datetime.timedelta,
    hosts: Sequence[str] = (),
    ca: bool = False,
) -> x509.Certificate:
    """Signed by `key` itself; `hosts` as DNS names (subjectAltName), `ca` marks it a CA."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + valid_for)
    )
    if hosts:
        names = [x509.DNSName(host) for host in hosts]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(key, hashes.SHA256())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """PKCS#8, unencrypted: what a test server loads."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
