"""The signature decision of deploy and promote (ci.core.signing.decide); the verification
itself against a real registry: tests/delivery/test_signature_verify.py."""

from __future__ import annotations

import pytest
from ci.core.signing import Finding, SignatureError, Status, decide, signature_tag

DIGEST = "sha256:" + "cd" * 32


def finding(service: str, status: Status) -> Finding:
    return Finding(service, f"ghcr.io/org/{service}", DIGEST, status)


def test_cosign_keeps_a_signature_under_the_digest_as_a_tag() -> None:
    assert signature_tag(DIGEST) == f"sha256-{'cd' * 32}.sig"
    with pytest.raises(ValueError, match="not sha256"):
        signature_tag("sha256:xyz")


def test_signed_digests_pass_without_a_warning() -> None:
    findings = [finding("auth", Status.VERIFIED), finding("ai", Status.VERIFIED)]
    verdict = decide(findings, allow_unsigned=False)
    assert verdict.allowed == tuple(findings)
    assert verdict.warnings == ()


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.VERIFIED])
def test_any_unsigned_digest_refuses_the_whole_set_naming_each(status: Status) -> None:
    findings = [finding("auth", Status.VERIFIED), finding("ai", status), finding("web", status)]
    with pytest.raises(SignatureError) as refused:
        decide(findings, allow_unsigned=False)
    text = str(refused.value)
    assert "refusing to pin 2 image digest(s) without a verified signature" in text
    assert f"ai: ghcr.io/org/ai@{DIGEST} {status.value}" in text
    assert "web:" in text
    assert "auth:" not in text


def test_allow_unsigned_lets_them_through_with_one_warning_each() -> None:
    findings = [finding("auth", Status.VERIFIED), finding("ai", Status.NOT_CHECKED)]
    verdict = decide(findings, allow_unsigned=True)
    assert verdict.warnings == (
        f"WARNING: --allow-unsigned: pinned UNSIGNED ai: ghcr.io/org/ai@{DIGEST} not checked",
    )
