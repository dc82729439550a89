"""ci.core.signing.verify_image against a real registry holding signatures in cosign's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from ci.core.registry import RegistryClient
from ci.core.signing import PublicKeyError, Status, load_public_key, verify_image
from cryptography.hazmat.primitives.asymmetric import ec
from delivery.cosign_layout import Signing, new_key, payload, sign, write_public_key
from delivery.helpers import free_port
from delivery.registry_server import LocalRegistry, push_image

REPOSITORY = "chat/auth"
KEY = new_key()


def image(registry: LocalRegistry, name: str) -> str:
    return push_image(registry.url, REPOSITORY, name, name.encode())


def verify(url: str, digest: str, tmp_path: Path) -> tuple[Status, str]:
    key = load_public_key(write_public_key(KEY, tmp_path / "cosign.pub"))
    with RegistryClient(url) as client:
        return verify_image(client, REPOSITORY, digest, key)


def test_a_signature_by_the_key_over_this_digest_verifies(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digest = image(registry, "valid")
    sign(registry.url, REPOSITORY, digest, Signing(KEY))
    assert verify(registry.url, digest, tmp_path) == (Status.VERIFIED, "")


def test_a_signature_by_another_key_is_invalid(registry: LocalRegistry, tmp_path: Path) -> None:
    digest = image(registry, "wrong-key")
    sign(registry.url, REPOSITORY, digest, Signing(new_key()))
    assert verify(registry.url, digest, tmp_path) == (
        Status.INVALID,
        "signature does not verify against the public key",
    )


def test_a_valid_signature_of_another_digest_is_invalid(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digest, other = image(registry, "copied"), image(registry, "original")
    sign(registry.url, REPOSITORY, digest, Signing(KEY, names=other))
    assert verify(registry.url, digest, tmp_path) == (
        Status.INVALID,
        f"the signed payload names {other}, not this digest",
    )


def test_a_tampered_payload_is_invalid(registry: LocalRegistry, tmp_path: Path) -> None:
    digest, other = image(registry, "tampered"), image(registry, "swapped")
    host = registry.url.removeprefix("http://")
    # Signed for `other`, the stored blob edited to name `digest`: the signature no longer fits.
    forged = payload(f"{host}/{REPOSITORY}", digest)
    sign(registry.url, REPOSITORY, digest, Signing(KEY, names=other, stored_payload=forged))
    assert verify(registry.url, digest, tmp_path) == (
        Status.INVALID,
        "signature does not verify against the public key",
    )


def test_a_keyless_signature_is_not_accepted(registry: LocalRegistry, tmp_path: Path) -> None:
    digest = image(registry, "keyless")
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    sign(registry.url, REPOSITORY, digest, Signing(new_key(), certificate=certificate))
    status, detail = verify(registry.url, digest, tmp_path)
    assert status is Status.INVALID
    assert detail.startswith("keyless (Fulcio certificate) signature: not verifiable offline")


def test_no_signature_is_missing(registry: LocalRegistry, tmp_path: Path) -> None:
    digest = image(registry, "unsigned")
    status, detail = verify(registry.url, digest, tmp_path)
    assert status is Status.MISSING
    assert detail == f"no sha256-{digest.removeprefix('sha256:')}.sig in the registry"


def test_a_registry_that_does_not_answer_is_not_verifiable(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    status, detail = verify(down, "sha256:" + "ab" * 32, tmp_path)
    assert status is Status.UNREACHABLE
    assert detail.startswith("registry: ")


def test_a_public_key_that_is_not_p256_is_refused_naming_the_file(tmp_path: Path) -> None:
    wrong = write_public_key(ec.generate_private_key(ec.SECP384R1()), tmp_path / "p384.pub")
    with pytest.raises(PublicKeyError, match=f"{wrong}: not an ECDSA P-256 key"):
        load_public_key(wrong)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key\n")
    with pytest.raises(PublicKeyError, match=f"{garbage}: not a PEM public key"):
        load_public_key(garbage)
