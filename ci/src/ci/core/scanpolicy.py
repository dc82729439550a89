"""The scan gate: Trivy's JSON report + an ignore file -> a verdict with the blocking findings.

A finding blocks when its severity is at or above the threshold and no valid ignore entry
covers it. Ignore entries must each carry an id, a reason and an expiry date; an expired entry
or one without a reason is an error naming the entry, never a silent pass.

Ignore file (YAML):
    ignores:
      - id: CVE-2024-12345
        package: openssl        # optional: only this package
        reason: not reachable, we never parse untrusted certificates
        expires: 2026-03-31
"""

from __future__ import annotations

import datetime as dt
import json
from enum import IntEnum
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PolicyError(ValueError):
    """The report or the ignore file is unusable; `problems` names each bad entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("scan policy error:\n" + "\n".join(f"  {p}" for p in problems))


class Severity(IntEnum):
    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value.upper()]
        except KeyError:
            names = ", ".join(s.name for s in cls)
            raise PolicyError([f"severity {value!r} is not one of {names}"]) from None


class _Report(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TrivyVulnerability(_Report):
    id: str = Field(alias="VulnerabilityID")
    package: str = Field(alias="PkgName")
    installed: str = Field(default="", alias="InstalledVersion")
    fixed: str = Field(default="", alias="FixedVersion")
    severity: str = Field(default="UNKNOWN", alias="Severity")
    title: str = Field(default="", alias="Title")


class TrivyResult(_Report):
    target: str = Field(default="", alias="Target")
    vulnerabilities: list[TrivyVulnerability] | None = Field(default=None, alias="Vulnerabilities")


class TrivyReport(_Report):
    artifact: str = Field(default="", alias="ArtifactName")
    results: list[TrivyResult] | None = Field(default=None, alias="Results")


class IgnoreEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)]
    expires: dt.date
    package: str | None = None

    def covers(self, finding: Finding) -> bool:
        return self.id == finding.id and self.package in (None, finding.package)


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    package: str
    installed: str
    fixed: str
    severity: str
    title: str
    target: str


class Verdict(BaseModel):
    """The gate's decision. `blocking` lists what fails the scan."""

    artifact: str
    threshold: str
    passed: bool
    blocking: list[Finding]
    ignored: list[Finding]
    below_threshold: int
    counts: dict[str, int]


def parse_report(text: str, source: str = "trivy report") -> TrivyReport:
    try:
        return TrivyReport.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise PolicyError([f"{source}: not a Trivy JSON report: {exc}"]) from exc


def parse_ignores(text: str, today: dt.date, source: str = "ignore file") -> list[IgnoreEntry]:
    """Validate the ignore file; every invalid or expired entry is reported by index and id."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyError([f"{source}: not valid YAML: {exc}"]) from exc
    raw = data.get("ignores", []) if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise PolicyError([f"{source}: expected a mapping with a list 'ignores'"])
    entries: list[IgnoreEntry] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        label = _entry_label(index, item)
        try:
            entry = IgnoreEntry.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "(entry)"
                problems.append(f"{source}: {label}: field '{field}': {err['msg']}")
            continue
        if entry.expires < today:
            problems.append(
                f"{source}: {label}: expired on {entry.expires.isoformat()} "
                f"(today is {today.isoformat()}); fix the finding or renew with a reason"
            )
            continue
        entries.append(entry)
    if problems:
        raise PolicyError(problems)
    return entries


def _entry_label(index: int, item: Any) -> str:
    entry_id = item.get("id") if isinstance(item, dict) else None
    return f"ignores[{index}] ({entry_id})" if entry_id else f"ignores[{index}]"


def findings(report: TrivyReport) -> list[Finding]:
    found = []
    for result in report.results or []:
        for vuln in result.vulnerabilities or []:
            found.append(
                Finding(
                    id=vuln.id,
                    package=vuln.package,
                    installed=vuln.installed,
                    fixed=vuln.fixed,
                    severity=vuln.severity.upper(),
                    title=vuln.title,
                    target=result.target,
                )
            )
    return found


def _severity(finding: Finding) -> Severity:
    return Severity.__members__.get(finding.severity, Severity.UNKNOWN)


def evaluate(
    report_json: str,
    threshold: str,
    ignore_yaml: str = "",
    today: dt.date | None = None,
) -> Verdict:
    """The verdict for a Trivy JSON report at `threshold` (e.g. HIGH blocks HIGH and CRITICAL)."""
    level = Severity.parse(threshold)
    report = parse_report(report_json)
    ignores = parse_ignores(ignore_yaml, today or dt.datetime.now(tz=dt.UTC).date())
    blocking: list[Finding] = []
    ignored: list[Finding] = []
    below = 0
    counts = {s.name: 0 for s in Severity}
    for finding in findings(report):
        counts[_severity(finding).name] += 1
        if _severity(finding) < level:
            below += 1
        elif any(entry.covers(finding) for entry in ignores):
            ignored.append(finding)
        else:
            blocking.append(finding)
    return Verdict(
        artifact=report.artifact,
        threshold=level.name,
        passed=not blocking,
        blocking=blocking,
        ignored=ignored,
        below_threshold=below,
        counts=counts,
    )


def hadolint_errors(report_json: str) -> list[str]:
    """Hadolint findings of level `error` (JSON format), as `line: code message` strings."""
    try:
        items = json.loads(report_json or "[]")
    except json.JSONDecodeError as exc:
        raise PolicyError([f"hadolint report: not JSON: {exc}"]) from exc
    if not isinstance(items, list):
        raise PolicyError(["hadolint report: expected a JSON list"])
    return [
        f"{item.get('line')}: {item.get('code')} {item.get('message')}"
        for item in items
        if isinstance(item, dict) and item.get("level") == "error"
    ]


def summary(verdict: Verdict) -> str:
    """One line per blocking finding, for logs and error messages."""
    head = (
        f"{verdict.artifact or 'image'}: {'PASSED' if verdict.passed else 'FAILED'} at "
        f"{verdict.threshold} ({len(verdict.blocking)} blocking, {len(verdict.ignored)} ignored, "
        f"{verdict.below_threshold} below threshold)"
    )
    lines = [
        f"  {f.severity} {f.id} {f.package} {f.installed} -> {f.fixed or 'no fix'}: {f.title}"
        for f in verdict.blocking
    ]
    return "\n".join([head, *lines])
