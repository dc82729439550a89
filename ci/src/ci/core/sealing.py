"""Sealed Secrets: encrypt a Secret for one cluster with only its public certificate.

The result is a SealedSecret (bitnami.com/v1alpha1) that may live in git: only the Sealed Secrets
controller in that cluster, which holds the private key, turns it back into a Secret. Each value
is sealed the way the controller's `HybridEncrypt` expects: a fresh 32-byte AES-256-GCM session
key (zero nonce: the key is used once) encrypts the value, RSA-OAEP with SHA-256 encrypts the
session key, and the output is the RSA ciphertext's length (2 bytes, big endian), the RSA
ciphertext and the AES-GCM ciphertext. The OAEP label is "<namespace>/<name>" (the controller's
default "strict" scope), so a sealed value only opens as that Secret in that namespace.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SESSION_KEY_BYTES = 32


class SealingError(ValueError):
    """Bad input for sealing: names the certificate, name, namespace or key at fault."""


def public_key(certificate_pem: bytes) -> rsa.RSAPublicKey:
    """The RSA key of the controller's certificate (`kubeseal --fetch-cert`)."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as error:
        raise SealingError(f"certificate: not a PEM X.509 certificate ({error})") from error
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SealingError("certificate: the Sealed Secrets controller uses RSA keys")
    return key


def scope_label(namespace: str, name: str) -> bytes:
    """The OAEP label of the strict scope: the value opens only as this Secret."""
    if not DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        raise SealingError(f"namespace: {namespace!r} is not a Kubernetes namespace name")
    if not DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise SealingError(f"name: {name!r} is not a Kubernetes Secret name")
    return f"{namespace}/{name}".encode()


def seal_value(key: rsa.RSAPublicKey, label: bytes, value: bytes) -> str:
    """One encryptedData entry (base64), as the controller's HybridEncrypt writes it."""
    session_key = os.urandom(SESSION_KEY_BYTES)
    wrapped = key.encrypt(
        session_key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
    )
    sealed = AESGCM(session_key).encrypt(bytes(12), value, None)
    return base64.b64encode(struct.pack(">H", len(wrapped)) + wrapped + sealed).decode()


def sealed_secret(
    certificate_pem: bytes, namespace: str, name: str, data: Mapping[str, str]
) -> dict[str, Any]:
    """A SealedSecret manifest for a Secret `name` in `namespace` holding `data`."""
    if not data:
        raise SealingError("data: a Secret needs at least one key")
    for secret_key in data:
        if not SECRET_KEY.fullmatch(secret_key) or len(secret_key) > 253:
            raise SealingError(f"key: {secret_key!r} is not a valid Secret key")
    label = scope_label(namespace, name)
    key = public_key(certificate_pem)
    encrypted = {k: seal_value(key, label, v.encode()) for k, v in sorted(data.items())}
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "encryptedData": encrypted,
            "template": {"metadata": {"name": name, "namespace": namespace}, "type": "Opaque"},
        },
    }
