"""Whether `deploy` and `promote` may pin a set of image digests: each must carry a cosign
signature that verifies against the project's public key.

The engine signs each published image with cosign v2 (from its pinned image, with a key held as
a dagger.Secret). cosign stores the signature as an OCI image manifest under the tag
`sha256-<hex>.sig` of the image's repository: one layer per signature, of media type
`application/vnd.dev.cosign.simplesigning.v1+json`, whose blob is the signed "simple signing"
payload (`critical.image.docker-manifest-digest` names the signed digest) and whose annotation
`dev.cosignproject.cosign/signature` holds base64 of the ECDSA P-256 / SHA-256 signature (ASN.1
DER) over exactly those blob bytes. `verify_image` checks exactly what `cosign verify --key`
checks of a key-based signature, over the registry API (httpx) and `cryptography`; host and
engine run it alike through `python -m ci.deliver`.

Keyless signatures (a Fulcio certificate in `dev.sigstore.cosign/certificate`, a Rekor bundle)
need Sigstore's roots and transparency log, which are not reachable offline: they are not
accepted. The pipeline signs with its key, so a digest it published always has one; a keyless
one alone is reported as such and refused like any unverified digest.

`decide` is the one place that turns the findings into a verdict: every digest verified, or a
refusal naming each other one with its reason. `--allow-unsigned` lets them through for local
use (without a key nothing is looked up), and says so loudly.

No `import dagger`: the engine, the host and the tests share this code.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ci.core.registry import RegistryClient, RegistryError

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
# cosign's names (pkg/types, pkg/oci/static): facts of its storage format.
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
PAYLOAD_TYPE = "cosign container image signature"


class SignatureError(ValueError):
    """A digest about to be pinned has no valid signature; the message names each one."""


class PublicKeyError(ValueError):
    """The public key file is unreadable or not a P-256 key; the message names the file."""


class Status(Enum):
    VERIFIED = "verified"  # a signature by the public key over this very digest
    MISSING = "missing"  # no signature stored for the digest
    INVALID = "invalid"  # stored, but none verifies (the detail says why)
    UNREACHABLE = "not verifiable"  # the registry did not answer or refused (the detail says)
    NOT_CHECKED = "not checked"  # --allow-unsigned without a key: nobody looked


@dataclass(frozen=True)
class Finding:
    service: str
    image: str  # registry/repository
    digest: str
    status: Status
    detail: str = ""

    def line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.service}: {self.image}@{self.digest} {self.status.value}{detail}"


@dataclass(frozen=True)
class Verdict:
    allowed: tuple[Finding, ...]
    warnings: tuple[str, ...]  # what --allow-unsigned let through, one line each


@dataclass(frozen=True)
class SignatureLayer:
    digest: str  # of the payload blob
    signature: str | None  # base64, from the annotation
    keyless: bool  # carries a Fulcio certificate


def signature_tag(digest: str) -> str:
    """The tag cosign stores an image's signature under: sha256:<hex> -> sha256-<hex>.sig."""
    match = DIGEST.match(digest)
    if match is None:
        raise ValueError(f"{digest!r}: not sha256:<64 hex>")
    return f"sha256-{match.group(1)}.sig"


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """cosign's public key (PEM, `cosign generate-key-pair`'s cosign.pub): ECDSA P-256."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PublicKeyError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise PublicKeyError(f"{path}: not an ECDSA P-256 key (what cosign's key pairs are)")
    return key


def signature_layers(manifest: bytes) -> list[SignatureLayer]:
    """The simple-signing layers of a cosign signature manifest."""
    try:
        layers = json.loads(manifest).get("layers")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"signature manifest is not a JSON object: {exc}") from exc
    if not isinstance(layers, list):
        raise ValueError("signature manifest has no 'layers' list")
    found = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        annotations = layer.get("annotations") or {}
        found.append(
            SignatureLayer(
                digest=str(layer.get("digest", "")),
                signature=annotations.get(SIGNATURE_ANNOTATION),
                keyless=CERTIFICATE_ANNOTATION in annotations,
            )
        )
    return found


def check_layer(
    layer: SignatureLayer, payload: bytes, digest: str, key: ec.EllipticCurvePublicKey
) -> str | None:
    """None when `payload` is signed by `key` and names `digest`; else why not."""
    if layer.keyless:
        return "keyless (Fulcio certificate) signature: not verifiable offline, not accepted"
    if not layer.signature:
        return f"layer {layer.digest} has no {SIGNATURE_ANNOTATION} annotation"
    try:
        raw = base64.b64decode(layer.signature, validate=True)
        key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature):
        return "signature does not verify against the public key"
    named = _signed_digest(payload)
    if named != digest:
        return f"the signed payload names {named}, not this digest"
    return None


def _signed_digest(payload: bytes) -> str:
    try:
        critical: Any = json.loads(payload)["critical"]
        if critical["type"] != PAYLOAD_TYPE:
            return f"no image (payload type {critical['type']!r})"
        return str(critical["image"]["docker-manifest-digest"])
    except (ValueError, KeyError, TypeError):
        return "no image (not a simple-signing payload)"


def verify_image(
    client: RegistryClient, repository: str, digest: str, key: ec.EllipticCurvePublicKey
) -> tuple[Status, str]:
    """(status, detail) of the cosign signatures stored for `repository@digest`."""
    try:
        stored = client.head_digest(repository, signature_tag(digest))
        if stored is None:
            return Status.MISSING, f"no {signature_tag(digest)} in the registry"
        layers = signature_layers(client.get_manifest(repository, stored).data)
        reasons = [
            check_layer(layer, client.get_blob(repository, layer.digest), digest, key)
            for layer in layers
        ]
    except (RegistryError, httpx.HTTPError) as exc:
        return Status.UNREACHABLE, f"registry: {exc or type(exc).__name__}"
    except ValueError as exc:
        return Status.INVALID, str(exc)
    if None in reasons:
        return Status.VERIFIED, ""
    if not reasons:
        return Status.INVALID, f"{signature_tag(digest)} holds no simple-signing layer"
    return Status.INVALID, "; ".join(dict.fromkeys(r for r in reasons if r))


def decide(findings: Sequence[Finding], allow_unsigned: bool) -> Verdict:
    """Every finding verified, or SignatureError naming the others (unless allowed, loudly)."""
    unsigned = [f for f in findings if f.status is not Status.VERIFIED]
    if unsigned and not allow_unsigned:
        lines = "\n".join(f"  {f.line()}" for f in unsigned)
        raise SignatureError(
            f"refusing to pin {len(unsigned)} image digest(s) without a verified signature:\n"
            f"{lines}\n"
            "sign them with the pipeline's key (the engine's publish does), "
            "or pass --allow-unsigned for local use"
        )
    warnings = tuple(f"WARNING: --allow-unsigned: pinned UNSIGNED {f.line()}" for f in unsigned)
    return Verdict(tuple(findings), warnings)
