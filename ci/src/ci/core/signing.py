"""Whether `deploy` and `promote` may pin a set of image digests: each must be signed.

The engine signs each published image with cosign (from its pinned image, with a key held as a
dagger.Secret) and verifies the signature with `cosign verify`; the command line
(`python -m ci.deliver bump/promote`) looks the signature up in the registry, where cosign keeps
it as the tag `sha256-<hex>.sig` of the image's repository. Either way the facts end up as a
`Finding` per image, and the decision below is the one place that turns them into a verdict:
every digest signed, or a refusal naming the unsigned ones. `--allow-unsigned` lets unsigned
digests through for local use, and says so loudly.

No `import dagger`: the engine, the host and the tests share this code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class SignatureError(ValueError):
    """A digest about to be pinned has no valid signature; the message names each one."""


class Status(Enum):
    VERIFIED = "verified"  # a signature that checked out (engine: cosign verify)
    PRESENT = "present"  # a signature manifest is stored (host: the registry's tag)
    MISSING = "missing"
    INVALID = "invalid"  # cosign verify refused it
    NOT_CHECKED = "not checked"  # --allow-unsigned: nobody looked


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


def signature_tag(digest: str) -> str:
    """The tag cosign stores an image's signature under: sha256:<hex> -> sha256-<hex>.sig."""
    match = DIGEST.match(digest)
    if match is None:
        raise ValueError(f"{digest!r}: not sha256:<64 hex>")
    return f"sha256-{match.group(1)}.sig"


def decide(findings: Sequence[Finding], allow_unsigned: bool) -> Verdict:
    """Every finding signed, or SignatureError naming the others (unless allowed, loudly)."""
    signed = {Status.VERIFIED, Status.PRESENT}
    unsigned = [f for f in findings if f.status not in signed]
    if unsigned and not allow_unsigned:
        lines = "\n".join(f"  {f.line()}" for f in unsigned)
        raise SignatureError(
            f"refusing to pin {len(unsigned)} unsigned image digest(s):\n{lines}\n"
            "sign them (the engine's publish does), or pass --allow-unsigned for local use"
        )
    warnings = tuple(f"WARNING: --allow-unsigned: pinned UNSIGNED {f.line()}" for f in unsigned)
    return Verdict(tuple(findings), warnings)
