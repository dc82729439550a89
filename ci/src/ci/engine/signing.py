"""Sign and attest a published image with cosign, from its pinned image (ci.core.toolversions).

The key and its password stay dagger.Secrets (cosign reads them from `env://` variables); the
registry login reaches cosign as a Docker config file mounted from a Secret. The signature is
stored where cosign v2 keeps it (the `sha256-<hex>.sig` tag), the SLSA provenance
(ci.core.provenance) and the SBOM as in-toto attestations beside it. Verification is not here:
`python -m ci.deliver bump/promote --public-key` checks each signature (ci.core.signing) in the
toolchain container, the same code the host tests run against a real registry.
Runs only in an engine: nothing here is exercised on the host (see docs/delivery.md).
"""

from __future__ import annotations

import base64
import json

import dagger
from dagger import dag

from ci.core import toolversions

WORK = "/work"
DOCKER_CONFIG = "/cosign-home/.docker/config.json"


async def registry_config(host: str, username: str, password: dagger.Secret) -> dagger.Secret:
    """A Docker config.json for `host`, itself a Secret (the password never leaves one)."""
    auth = base64.b64encode(f"{username}:{await password.plaintext()}".encode()).decode()
    config = json.dumps({"auths": {host: {"auth": auth}}})
    return dag.set_secret(f"cosign-registry-{host}", config)


def cosign(config: dagger.Secret) -> dagger.Container:
    return (
        dag.container()
        .from_(toolversions.COSIGN_IMAGE)
        .with_env_variable("HOME", "/cosign-home")
        .with_mounted_secret(DOCKER_CONFIG, config)
        .with_env_variable("COSIGN_YES", "true")
    )


def with_key(
    ctr: dagger.Container, key: dagger.Secret, password: dagger.Secret
) -> dagger.Container:
    return ctr.with_secret_variable("COSIGN_KEY", key).with_secret_variable(
        "COSIGN_PASSWORD", password
    )


def attest(kind: str, predicate: str, reference: str) -> list[str]:
    return [
        "attest",
        "--key",
        "env://COSIGN_KEY",
        "--type",
        kind,
        "--predicate",
        predicate,
        reference,
    ]


async def sign_and_attest(
    config: dagger.Secret,
    key: dagger.Secret,
    password: dagger.Secret,
    reference: str,
    provenance_predicate: str,
    sbom: dagger.File | None,
) -> None:
    """Sign `reference` (name@sha256:...), then attach its provenance (and SBOM) attestations."""
    ctr = with_key(cosign(config), key, password).with_new_file(
        f"{WORK}/provenance.json", provenance_predicate
    )
    ctr = ctr.with_exec(["sign", "--key", "env://COSIGN_KEY", reference], use_entrypoint=True)
    ctr = ctr.with_exec(
        attest("slsaprovenance1", f"{WORK}/provenance.json", reference), use_entrypoint=True
    )
    if sbom is not None:
        ctr = ctr.with_file(f"{WORK}/sbom.cdx.json", sbom).with_exec(
            attest("cyclonedx", f"{WORK}/sbom.cdx.json", reference), use_entrypoint=True
        )
    await ctr.sync()
