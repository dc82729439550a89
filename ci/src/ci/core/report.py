"""Results of a `check` run: one entry per service and stage, and the summary printed at the end.

The engine (`dagger call check`) and host mode (`python -m ci.check`) print the same table.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, model_validator

from ci.core.recipes import REPO_SUITE

STAGES = ("lint", "test", "build", "scan")


class StageResult(BaseModel):
    """The verdict of one stage of one service.

    `not_run` names why a stage could not run here (a missing optional tool such as a Docker
    daemon); such a stage is neither passed silently nor a failure of the run.
    """

    model_config = ConfigDict(frozen=True)

    service: str
    stage: str
    ok: bool
    detail: str = ""
    seconds: float | None = None
    not_run: str = ""

    @model_validator(mode="after")
    def _not_run_is_no_failure(self) -> StageResult:
        if self.not_run and not self.ok:
            raise ValueError("a stage that did not run cannot have failed (ok must be True)")
        return self

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAILED"
        return f"not run: {self.not_run}" if self.not_run else "ok"


def failed(results: Iterable[StageResult]) -> list[StageResult]:
    return [r for r in results if not r.ok]


def _order(result: StageResult) -> tuple[str, int, str]:
    stage = STAGES.index(result.stage) if result.stage in STAGES else len(STAGES)
    return result.service, stage, result.stage


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def summary(results: Iterable[StageResult]) -> str:
    """A table: one row per service and stage (duration, verdict); failures with their detail
    below."""
    rows = sorted(results, key=_order)
    if not rows:
        return "check: no services selected"
    table = [("service", "stage", "duration", "verdict")]
    table += [(r.service, r.stage, duration(r.seconds), r.verdict) for r in rows]
    widths = [max(len(row[column]) for row in table) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + f"  {row[3]}"
        for row in table
    ]
    bad = failed(rows)
    names = {r.service for r in rows}
    # The repository suite is no service: counted apart, so the footer agrees with the header.
    services = f"{len(names - {REPO_SUITE})} service(s)"
    services += " and the repository suite" if REPO_SUITE in names else ""
    skipped = sum(1 for r in rows if r.not_run)
    lines.append(f"{services}, {len(rows)} stage(s): {len(bad)} failed, {skipped} not run")
    for result in bad:
        lines.append(f"--- {result.service} {result.stage}:\n{result.detail.strip()}")
    return "\n".join(lines)
