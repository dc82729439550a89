"""The signing key ring: Ed25519 private keys by kid, one of them active, all of them published.

Rotation: add the new key to the Secret (all replicas then publish it in the JWKS), later make
it the signer (a greater kid, or AUTH_ACTIVE_KID), and remove the old key only once the longest
access-token lifetime has passed. Tokens signed by any published key keep verifying.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from auth.config import Settings

logger = logging.getLogger(__name__)

_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyConfigError(ValueError):
    """The signing keys are missing or unusable; the message names the variable or file."""


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, Ed25519PrivateKey]
    active_kid: str

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.keys[self.active_kid]

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS document (sorted by kid, so replicas answer the same)."""
        return {"keys": [public_jwk(kid, self.keys[kid]) for kid in sorted(self.keys)]}


def public_jwk(kid: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


def parse_private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"{source}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigError(f"{source}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def thumbprint_kid(key: Ed25519PrivateKey) -> str:
    """A stable kid derived from the public key, so every replica names an env key alike."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _keys_from_dir(directory: Path) -> dict[str, Ed25519PrivateKey]:
    if not directory.is_dir():
        raise KeyConfigError(f"AUTH_SIGNING_KEYS_DIR={directory}: not a directory")
    keys: dict[str, Ed25519PrivateKey] = {}
    for path in sorted(directory.iterdir()):
        # Kubernetes Secret volumes hold `..data`-style links next to the files: skip dotfiles.
        if path.name.startswith(".") or not path.is_file():
            continue
        kid = path.name.removesuffix(".pem")
        if not _KID.match(kid):
            raise KeyConfigError(f"{path}: file name {kid!r} is not a usable kid ([A-Za-z0-9._-])")
        keys[kid] = parse_private_key(path.read_bytes(), str(path))
    return keys


def load_keyring(settings: Settings) -> KeyRing:
    keys: dict[str, Ed25519PrivateKey] = {}
    if settings.auth_signing_keys_dir is not None:
        keys.update(_keys_from_dir(settings.auth_signing_keys_dir))
    if settings.auth_signing_key is not None:
        pem = settings.auth_signing_key.get_secret_value().encode()
        key = parse_private_key(pem, "AUTH_SIGNING_KEY")
        keys[thumbprint_kid(key)] = key
    if not keys:
        if not settings.auth_dev_mode:
            raise KeyConfigError(
                "no signing keys: set AUTH_SIGNING_KEYS_DIR (PEM files named <kid>.pem) or "
                "AUTH_SIGNING_KEY, or AUTH_DEV_MODE=true to generate a throw-away key"
            )
        key = Ed25519PrivateKey.generate()
        kid = f"dev-{thumbprint_kid(key)}"
        logger.warning("AUTH_DEV_MODE: generated an ephemeral signing key", extra={"kid": kid})
        keys[kid] = key
    active = settings.auth_active_kid or max(keys)
    if active not in keys:
        raise KeyConfigError(
            f"AUTH_ACTIVE_KID={active!r} is not among the loaded keys: {', '.join(sorted(keys))}"
        )
    return KeyRing(keys=keys, active_kid=active)
