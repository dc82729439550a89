"""Key-based cosign signatures written into a real registry exactly as cosign v2 stores them.

A signature is an OCI image manifest under the tag `sha256-<hex>.sig`: an OCI config whose one
diff_id is the payload's digest, and one layer per signature of type
`application/vnd.dev.cosign.simplesigning.v1+json` whose blob is the simple-signing payload and
whose `dev.cosignproject.cosign/signature` annotation is base64 of the ECDSA P-256 / SHA-256
signature (ASN.1 DER) over the blob. The knobs make the broken variants the verifier must refuse.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from ci.core.signing import signature_tag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from delivery.registry_server import OCI_MANIFEST, put_manifest, upload_blob


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_public_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    """cosign.pub as `cosign generate-key-pair` writes it (PEM SubjectPublicKeyInfo)."""
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def payload(reference: str, digest: str) -> bytes:
    """The simple-signing payload cosign signs for `reference@digest`."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Signing:
    """What to sign and how to spoil it."""

    key: ec.EllipticCurvePrivateKey
    names: str = ""  # the digest the payload names (default: the signed image's)
    stored_payload: bytes | None = None  # stored instead of what was signed (a tampered blob)
    certificate: str | None = None  # a keyless signature's Fulcio certificate annotation


def sign(url: str, repository: str, digest: str, how: Signing) -> str:
    """Push the signature manifest of `repository@digest`; returns its digest."""
    host = url.removeprefix("http://")
    signed = payload(f"{host}/{repository}", how.names or digest)
    signature = how.key.sign(signed, ec.ECDSA(hashes.SHA256()))
    stored = how.stored_payload if how.stored_payload is not None else signed
    layer_digest = upload_blob(url, repository, stored)
    config = json.dumps(
        {
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        separators=(",", ":"),
    ).encode()
    annotations = {"dev.cosignproject.cosign/signature": base64.b64encode(signature).decode()}
    if how.certificate is not None:
        annotations["dev.sigstore.cosign/certificate"] = how.certificate
        annotations["dev.sigstore.cosign/chain"] = ""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": upload_blob(url, repository, config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "size": len(stored),
                "digest": layer_digest,
                "annotations": annotations,
            }
        ],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return put_manifest(url, repository, signature_tag(digest), body, OCI_MANIFEST)
