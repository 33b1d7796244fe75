"""Studies over several seeds: cells run here or on a Dask cluster, and the mean and
confidence interval of every KPI across seeds.

A *cell* is one :func:`~allocator.simulation.simulate` call of a study (a policy, a
multiplier, a seed). :func:`run_cells` runs a list of them in order, or as Dask
tasks when a client or scheduler is given (each worker builds its own scenario
from the seed, so only the parameters travel); either way the results are the
same, cell for cell. :func:`kpi_intervals` summarises the seeds of one column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator.scenarios import Scenario, ScenarioData
from allocator.simulation.engine import SimulationResult, simulate

__all__ = [
    "Interval",
    "format_intervals",
    "intervals_frame",
    "kpi_intervals",
    "run_cells",
]

#: Engine speed figures: reported, but no business KPI and not expected to repeat.
SPEED_KPIS = frozenset({"ledger_events_per_s"})


@dataclass(frozen=True)
class Interval:
    """Mean of a KPI across ``n`` seeds and its two-sided 95 % interval (Student's
    t; ``low`` and ``high`` are NaN with fewer than two finite values)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _simulate_cell(cell: Mapping[str, Any], common: tuple[Any, ...]) -> SimulationResult:
    scenario, days, options = common
    return simulate(scenario, days=days, **options, **cell)


def run_cells(
    scenario: Scenario | ScenarioData,
    cells: Sequence[Mapping[str, Any]],
    *,
    days: int,
    options: Mapping[str, Any],
    client: Any = None,
    scheduler: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SimulationResult]:
    """``simulate(scenario, days=days, **options, **cell)`` for every cell, in order.

    With ``client`` or ``scheduler`` the cells run as Dask tasks (one each); a
    cell whose worker dies is run again, and gives the same result.
    """
    common = (scenario, days, dict(options))
    if client is None and scheduler is None:
        out = []
        for i, cell in enumerate(cells):
            out.append(_simulate_cell(cell, common))
            if progress is not None:
                progress(i + 1, len(cells))
        return out
    from allocator import distributed as D

    with D.connect(client, scheduler) as c:
        results, _ = D.run_tasks(
            c, _simulate_cell, list(cells), common, name="simulate", progress=progress
        )
    return results


def kpi_intervals(results: Sequence[SimulationResult]) -> dict[str, Interval]:
    """Per KPI, the mean across the runs (one per seed) and its 95 % interval
    (:func:`~allocator.simulation.compare.interval`; NaN values, a KPI without data
    in a run, are left out)."""
    from allocator.simulation.compare import interval

    table = [r.kpis.as_dict() for r in results]
    out: dict[str, Interval] = {}
    for key in table[0] if table else ():
        x = np.array([row.get(key, math.nan) for row in table], dtype=np.float64)
        x = x[np.isfinite(x)]
        mean, half = interval(x.tolist())
        out[key] = Interval(mean, mean - half, mean + half, int(x.size))
    return out


def format_intervals(
    columns: Mapping[str, Mapping[str, Interval]], formats: Sequence[tuple[str, str]]
) -> str:
    """A plain-text table: per KPI and column, ``mean ± half-width``."""
    names = list(columns)
    seeds = max((iv.n for col in columns.values() for iv in col.values()), default=0)
    rows = [[f"kpi (mean ± 95 % CI, {seeds} seeds)", *names]]
    for key, fmt in formats:
        if key in SPEED_KPIS:
            continue
        cells = []
        for name in names:
            iv = columns[name].get(key)
            if iv is None or math.isnan(iv.mean):
                cells.append("n/a")
            elif math.isnan(iv.half_width):
                cells.append(fmt.format(iv.mean))
            else:
                cells.append(f"{fmt.format(iv.mean)} ± {fmt.format(iv.half_width)}")
        rows.append([key, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def intervals_frame(columns: Mapping[str, Mapping[str, Interval]], label: str) -> Any:
    """``{column: {kpi: Interval}}`` as a DataFrame (one row per column and KPI)."""
    import pandas as pd

    rows = [
        {label: name, "kpi": key, "mean": iv.mean, "low": iv.low, "high": iv.high, "seeds": iv.n}
        for name, col in columns.items()
        for key, iv in col.items()
    ]
    return pd.DataFrame(rows)
