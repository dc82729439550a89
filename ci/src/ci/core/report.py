"""Results of a `check` run: one entry per service and stage, and the summary printed at the end."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

STAGES = ("lint", "test", "build", "scan")


class StageResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    stage: str
    ok: bool
    detail: str = ""


def failed(results: Iterable[StageResult]) -> list[StageResult]:
    return [r for r in results if not r.ok]


def _order(result: StageResult) -> tuple[str, int]:
    stage = STAGES.index(result.stage) if result.stage in STAGES else len(STAGES)
    return result.service, stage


def _cell(result: StageResult | None) -> str:
    if result is None:
        return "-"
    return "ok" if result.ok else "FAIL"


def summary(results: Iterable[StageResult]) -> str:
    """A table: one row per service, one column per stage; failures with their detail below."""
    rows = sorted(results, key=_order)
    by_service: dict[str, dict[str, StageResult]] = {}
    for result in rows:
        by_service.setdefault(result.service, {})[result.stage] = result
    if not by_service:
        return "check: no services selected"
    width = max(len(name) for name in by_service)
    header = f"{'service'.ljust(width)}  " + "  ".join(s.ljust(5) for s in STAGES)
    lines = [header]
    for name, stages in by_service.items():
        cells = [_cell(stages.get(stage)) for stage in STAGES]
        lines.append(f"{name.ljust(width)}  " + "  ".join(c.ljust(5) for c in cells))
    bad = failed(rows)
    lines.append(f"{len(by_service)} service(s), {len(bad)} failed stage(s)")
    for result in bad:
        lines.append(f"--- {result.service} {result.stage}:\n{result.detail.strip()}")
    return "\n".join(lines)
