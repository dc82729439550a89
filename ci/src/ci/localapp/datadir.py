"""The local app's data directory (`make run`: `.localapp/` in the repository, git-ignored).

What survives a restart lives here: the PostgreSQL cluster, Redis's append-only file and
snapshot, the media files, the credentials generated at the first start (as the cluster's
Secrets are: PostgreSQL and Redis passwords, one PostgreSQL role per service, Django's secret
key, backend's client secret, auth's signing key) and the logs of the last runs. `make reset`
(or `make run RESET=1`) deletes it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEPT_LOG_RUNS = 5  # log folders of older runs are deleted at start


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def prepare(self) -> None:
        """The folders, credentials readable by their owner only."""
        for folder in (self.root, self.postgres, self.redis, self.media, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.credentials.mkdir(mode=0o700, exist_ok=True)
        self.credentials.chmod(0o700)

    def secret(self, name: str) -> str:
        """The credential `name`, generated (hex, 64 characters) on first use."""
        path = self.credentials / name
        if not path.is_file():
            _write_private(path, secrets.token_hex(32))
        return path.read_text().strip()

    def signing_keys(self) -> Path:
        """auth's signing key folder (AUTH_SIGNING_KEYS_DIR): tokens outlive a restart."""
        folder = self.credentials / "auth-signing-keys"
        folder.mkdir(mode=0o700, exist_ok=True)
        if not any(folder.glob("*.pem")):
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(folder / f"local-{int(time.time())}.pem", pem.decode())
        return folder

    def new_log_folder(self) -> Path:
        """logs/<UTC start time>/ for this run; only the newest KEPT_LOG_RUNS folders stay."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = self.logs / stamp
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = self.logs / f"{stamp}-{suffix}"
        folder.mkdir(parents=True)
        runs = sorted(path for path in self.logs.iterdir() if path.is_dir())
        for old in runs[:-KEPT_LOG_RUNS]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def reset(self) -> None:
        """Delete everything: the next start is a first start."""
        shutil.rmtree(self.root, ignore_errors=True)


def _write_private(path: Path, text: str) -> None:
    """`text` into a new file that only its owner can read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
