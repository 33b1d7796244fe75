"""Policies side by side (:func:`compare`) and where service breaks (:func:`capacity_sweep`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from allocator.exceptions import ValidationError
from allocator.scenarios import Scenario, ScenarioData
from allocator.simulation.engine import POLICIES, SimulationResult, simulate
from allocator.simulation.seeds import Interval, format_intervals, intervals_frame, kpi_intervals
from allocator.simulation.seeds import run_cells as _run_cells

__all__ = ["CapacitySweep", "Comparison", "capacity_sweep", "compare"]

#: KPIs shown by :meth:`Comparison.summary` and the CLI, with their formats.
TABLE_KPIS: tuple[tuple[str, str], ...] = (
    ("season_objective", "{:,.0f}"),
    ("fill_rate_store", "{:.1%}"),
    ("fill_rate_online", "{:.1%}"),
    ("fill_rate_marketplace", "{:.1%}"),
    ("lost_value", "{:,.0f}"),
    ("orders", "{:,.0f}"),
    ("split_rate", "{:.1%}"),
    ("packages_per_order", "{:.3f}"),
    ("cost_per_order", "{:.2f}"),
    ("avg_km", "{:.1f}"),
    ("pickup_on_time", "{:.1%}"),
    ("utilisation_mean", "{:.1%}"),
    ("utilisation_peak", "{:.1%}"),
    ("stockout_rate", "{:.1%}"),
    ("turnover_days", "{:.1f}"),
    ("order_error_rate", "{:.2%}"),
    ("fulfilment_days_online", "{:.2f}"),
    ("fulfilment_days_marketplace", "{:.2f}"),
    ("oversells", "{:.0f}"),
    ("events", "{:,.0f}"),
    ("ledger_events_per_s", "{:,.0f}"),
)


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % t interval (NaN half-width for one value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] == 0:
        return math.nan, math.nan
    if v.shape[0] < 2:
        return float(v.mean()), math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.975, v.shape[0] - 1) * v.std(ddof=1) / math.sqrt(v.shape[0]))
    return float(v.mean()), half


def common_cost_per_order(results: Sequence[SimulationResult]) -> list[float]:
    """Mean fulfilment cost of the orders every run filled in full, per run."""
    if not results:
        return []
    ids = results[0].outcomes.id
    full = np.ones(ids.shape[0], dtype=np.bool_)
    for r in results:
        if not np.array_equal(r.outcomes.id, ids):
            raise ValidationError("the runs did not see the same orders", field="results")
        full &= r.outcomes.full
    if not full.any():
        return [math.nan] * len(results)
    return [float(r.outcomes.cost[full].mean()) for r in results]


def format_table(
    columns: dict[str, dict[str, float]], extra: dict[str, list[str]] | None = None
) -> str:
    """A plain-text KPI table, one column per run (used by summaries and the CLI)."""
    names = list(columns)
    rows = [["kpi", *names]]
    for key, fmt in TABLE_KPIS:
        cells = []
        for name in names:
            v = columns[name].get(key, float("nan"))
            cells.append(
                "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)
            )
        rows.append([key, *cells])
    for key, cells in (extra or {}).items():
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


@dataclass(frozen=True, eq=False)
class Comparison:
    """Several sourcing policies run on the same seeded scenario.

    Attributes
    ----------
    results
        :class:`SimulationResult` per policy name, in the order given (the first seed).
    by_seed
        Every seed's result per policy (one entry each without ``seeds``).
    seeds
        The seeds, in the order of ``by_seed``.
    """

    results: dict[str, SimulationResult]
    by_seed: dict[str, tuple[SimulationResult, ...]] | None = None
    seeds: tuple[int, ...] = ()

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(self.results)

    def _runs(self) -> dict[str, tuple[SimulationResult, ...]]:
        if self.by_seed is not None:
            return self.by_seed
        return {p: (r,) for p, r in self.results.items()}

    def per_seed(self, kpi: str) -> dict[str, list[float]]:
        """``{policy: [value per seed]}`` of a KPI of :meth:`KPIs.as_dict`, or of
        ``"common_cost_per_order"`` (fulfilment cost per order on the orders every
        policy filled in full, seed by seed)."""
        runs = self._runs()
        if kpi == "common_cost_per_order":
            n = len(next(iter(runs.values())))
            out: dict[str, list[float]] = {p: [] for p in runs}
            for i in range(n):
                got = common_cost_per_order([runs[p][i] for p in runs])
                for p, v in zip(runs, got, strict=True):
                    out[p].append(v)
            return out
        return {p: [r.kpis.as_dict().get(kpi, math.nan) for r in rs] for p, rs in runs.items()}

    def interval(self, kpi: str) -> dict[str, tuple[float, float]]:
        """``{policy: (mean, half-width of the 95 % interval)}`` over the seeds."""
        return {p: interval(v) for p, v in self.per_seed(kpi).items()}

    def intervals(self) -> dict[str, dict[str, Interval]]:
        """``{policy: {kpi: Interval}}``: every KPI's mean and 95 % interval over the seeds."""
        return {p: kpi_intervals(rs) for p, rs in self._runs().items()}

    def intervals_frame(self) -> Any:
        """One row per (policy, KPI): mean, low, high, seeds."""
        return intervals_frame(self.intervals(), "policy")

    def table(self) -> dict[str, dict[str, float]]:
        """``{policy: {kpi: value}}``."""
        return {name: r.kpis.as_dict() for name, r in self.results.items()}

    def summary(self) -> str:
        secs = {name: [f"{r.timings['total']:.1f}"] for name, r in self.results.items()}
        extra = {"seconds": [v[0] for v in secs.values()]}
        text = format_table(self.table(), extra)
        if len(self.seeds) > 1:
            text += "\n\n" + format_intervals(self.intervals(), TABLE_KPIS)
        return text

    def to_frame(self) -> Any:
        """One row per KPI, one column per policy."""
        import pandas as pd

        return pd.DataFrame(self.table())


def compare(
    scenario: Scenario | ScenarioData,
    sourcing: Sequence[str] = ("greedy",),
    *,
    days: int = 28,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    client: Any = None,
    scheduler: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> Comparison:
    """Run each sourcing policy on the same seeded scenario (same customers, same stock).

    Parameters
    ----------
    scenario
        A scenario, built once with ``seed``, or an already built one.
    sourcing
        Policies of :data:`~allocator.simulation.POLICIES`, e.g. ``("greedy", "future")``.
    days, seed
        As in :func:`simulate`.
    seeds
        Several seeds (a :class:`~allocator.scenarios.Scenario` only): every policy
        runs on each; :meth:`Comparison.interval` gives means and 95 % intervals,
        and the summary adds them for every KPI.
    client, scheduler
        Run the (policy x seed) cells as Dask tasks (a ``distributed.Client``, or a
        scheduler address); each worker builds its scenario from the seed. The
        results are those of the single-process run.
    progress
        Called as ``progress(policy, days_done, days)`` (on a cluster:
        ``progress("runs", runs_done, runs)``).
    **options
        Passed to :func:`simulate` (``volume``, ``capacity``, ``sourcing_options``,
        ``keep_log``, ...).

    Raises
    ------
    ValidationError
        An empty or repeated policy list, or an unknown method, before anything runs.
    """
    names = list(sourcing) if not isinstance(sourcing, str) else [sourcing]
    if not names:
        raise ValidationError("give at least one sourcing method", field="sourcing")
    if len(set(names)) != len(names):
        raise ValidationError("a sourcing method is listed twice", field="sourcing")
    for i, name in enumerate(names):
        if name not in POLICIES:
            raise ValidationError(
                f"unknown sourcing policy {name!r}; expected one of {POLICIES}",
                field="sourcing",
                row=i,
                code="unknown_method",
            )
    if seeds is None:
        datas = [_build(scenario, seed)]
    else:
        if not isinstance(scenario, Scenario) or seed is not None:
            raise ValidationError(
                "seeds needs a Scenario (built once per seed) and no seed",
                field="seeds",
            )
        datas = [_build(scenario, int(s)) for s in seeds]
        if not datas:
            raise ValidationError("give at least one seed", field="seeds")
    by_seed: dict[str, list[SimulationResult]] = {name: [] for name in names}
    seed_list = tuple(d.seed for d in datas)
    if client is not None or scheduler is not None:
        cells = [{"sourcing": n, "seed": d.seed} for d in datas for n in names]
        cb = None if progress is None else (lambda done, total: progress("runs", done, total))
        runs = _run_cells(
            scenario if isinstance(scenario, Scenario) else datas[0],
            cells,
            days=days,
            options=options,
            client=client,
            scheduler=scheduler,
            progress=cb,
        )
        datas = []  # run already
        for cell, run in zip(cells, runs, strict=True):
            by_seed[str(cell["sourcing"])].append(run)
    for data in datas:
        for name in names:
            cb = (
                None
                if progress is None
                else (lambda done, total, _n=name: progress(_n, done, total))
            )
            by_seed[name].append(simulate(data, sourcing=name, days=days, progress=cb, **options))
    results = {name: runs[0] for name, runs in by_seed.items()}
    return Comparison(
        results,
        {name: tuple(runs) for name, runs in by_seed.items()},
        seed_list,
    )


def _build(scenario: Scenario | ScenarioData, seed: int | None) -> ScenarioData:
    if isinstance(scenario, ScenarioData):
        if seed is not None and seed != scenario.seed:
            raise ValidationError(
                f"the scenario was built with seed {scenario.seed}, not {seed}", field="seed"
            )
        return scenario
    if not isinstance(scenario, Scenario):
        raise ValidationError(
            f"expected a Scenario, got {type(scenario).__name__}",
            field="scenario",
            code="wrong_dtype",
        )
    return scenario.build(0 if seed is None else seed)


@dataclass(frozen=True, eq=False)
class CapacitySweep:
    """Runs at increasing order volume (or pick capacity) and where service breaks.

    Attributes
    ----------
    kind
        ``"volume"`` (order-volume multipliers) or ``"capacity"`` (pick-capacity
        multipliers).
    multipliers
        The multipliers, ascending.
    results
        One :class:`SimulationResult` per multiplier.
    fill_target, on_time_target
        Service is broken when the online fill rate falls below ``fill_target`` or
        pick-up on time below ``on_time_target``.
    by_seed, seeds
        With ``seeds=``: per multiplier, one result per seed (``results`` holds the
        first seed's, which decide :meth:`ok`), and the seeds.
    """

    kind: str
    multipliers: tuple[float, ...]
    results: tuple[SimulationResult, ...]
    fill_target: float
    on_time_target: float
    by_seed: tuple[tuple[SimulationResult, ...], ...] | None = None
    seeds: tuple[int, ...] = ()

    def ok(self) -> np.ndarray:
        """Whether each run meets both service targets."""
        out = []
        for r in self.results:
            fill = r.kpis.fill_rate["online"]
            on_time = r.kpis.pickup_on_time
            out.append(
                (np.isnan(fill) or fill >= self.fill_target)
                and (np.isnan(on_time) or on_time >= self.on_time_target)
            )
        return np.array(out, dtype=np.bool_)

    @property
    def breaking_point(self) -> float | None:
        """For volume: the first multiplier that breaks service; for capacity: the
        smallest multiplier that still meets it. None when no run qualifies."""
        ok = self.ok()
        if self.kind == "volume":
            bad = np.flatnonzero(~ok)
            return float(self.multipliers[bad[0]]) if bad.size else None
        good = np.flatnonzero(ok)
        return float(self.multipliers[good[0]]) if good.size else None

    def table(self) -> dict[str, dict[str, float]]:
        return {
            f"{self.kind} x{m:g}": r.kpis.as_dict()
            for m, r in zip(self.multipliers, self.results, strict=True)
        }

    def intervals(self) -> dict[str, dict[str, Interval]]:
        """``{"volume x1.5": {kpi: Interval}}``: mean and 95 % interval over the seeds."""
        runs = self.by_seed if self.by_seed is not None else tuple((r,) for r in self.results)
        return {
            f"{self.kind} x{m:g}": kpi_intervals(rs)
            for m, rs in zip(self.multipliers, runs, strict=True)
        }

    def intervals_frame(self) -> Any:
        """One row per (multiplier, KPI): mean, low, high, seeds."""
        return intervals_frame(self.intervals(), "run")

    def summary(self) -> str:
        bp = self.breaking_point
        if self.kind == "volume":
            head = (
                f"service breaks at volume x{bp:g}"
                if bp is not None
                else "service holds at every volume tried"
            )
        else:
            head = (
                f"pick capacity x{bp:g} is the least that keeps service"
                if bp is not None
                else "no capacity tried keeps service"
            )
        ok = ["yes" if v else "NO" for v in self.ok()]
        text = head + "\n" + format_table(self.table(), {"meets targets": ok})
        if len(self.seeds) > 1:
            text += "\n\n" + format_intervals(self.intervals(), TABLE_KPIS)
        return text

    def to_frame(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame([r.kpis.as_dict() for r in self.results])
        frame.insert(0, self.kind, self.multipliers)
        frame["meets_targets"] = self.ok()
        return frame


def capacity_sweep(
    scenario: Scenario | ScenarioData,
    multipliers: Sequence[float] = (0.5, 1.0, 1.5, 2.0, 3.0),
    *,
    kind: Literal["volume", "capacity"] = "volume",
    sourcing: str = "greedy",
    days: int = 28,
    seed: int | None = None,
    fill_target: float = 0.95,
    on_time_target: float = 0.9,
    seeds: Sequence[int] | None = None,
    client: Any = None,
    scheduler: Any = None,
    progress: Callable[[float, int, int], None] | None = None,
    **options: Any,
) -> CapacitySweep:
    """Simulate at each order-volume or pick-capacity multiplier and find where service
    breaks.

    ``seeds`` (a :class:`~allocator.scenarios.Scenario` only) runs every multiplier
    on each seed; the summary adds each KPI's mean and 95 % interval over the
    seeds. ``client`` or ``scheduler`` runs the (multiplier x seed) cells as Dask
    tasks, with the single-process results; ``progress`` is then called as
    ``progress(-1.0, runs_done, runs)``.

    Raises
    ------
    ValidationError
        An unknown ``kind``, no multipliers, a multiplier that is not positive and
        finite, or targets outside [0, 1], before anything runs.
    """
    if kind not in ("volume", "capacity"):
        raise ValidationError(
            f"expected 'volume' or 'capacity', got {kind!r}", field="kind", code="invalid_choice"
        )
    mults = [float(m) for m in multipliers]
    if not mults:
        raise ValidationError("give at least one multiplier", field="multipliers")
    for i, m in enumerate(mults):
        if not math.isfinite(m) or m <= 0:
            raise ValidationError(
                f"expected a positive multiplier, got {m}",
                field="multipliers",
                row=i,
                code="out_of_range",
            )
    for name, v in (("fill_target", fill_target), ("on_time_target", on_time_target)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValidationError(f"{v} outside [0, 1]", field=name, code="out_of_range")
    if sourcing not in POLICIES:
        raise ValidationError(
            f"unknown sourcing policy {sourcing!r}", field="sourcing", code="unknown_method"
        )
    mults.sort()
    if seeds is not None or client is not None or scheduler is not None:
        if seeds is not None and (not isinstance(scenario, Scenario) or seed is not None):
            raise ValidationError(
                "seeds needs a Scenario (built once per seed) and no seed", field="seeds"
            )
        seed_list = [int(s) for s in seeds] if seeds is not None else [_build(scenario, seed).seed]
        if not seed_list:
            raise ValidationError("give at least one seed", field="seeds")
        cells = [{"sourcing": sourcing, kind: m, "seed": s} for m in mults for s in seed_list]
        cb = None if progress is None else (lambda done, total: progress(-1.0, done, total))
        runs = _run_cells(
            scenario,
            cells,
            days=days,
            options=options,
            client=client,
            scheduler=scheduler,
            progress=cb,
        )
        k = len(seed_list)
        per = tuple(tuple(runs[i * k : (i + 1) * k]) for i in range(len(mults)))
        return CapacitySweep(
            kind=kind,
            multipliers=tuple(mults),
            results=tuple(rs[0] for rs in per),
            fill_target=float(fill_target),
            on_time_target=float(on_time_target),
            by_seed=per,
            seeds=tuple(seed_list),
        )
    data = _build(scenario, seed)
    results = []
    for m in mults:
        run_options: dict[str, Any] = {**options, kind: m}
        cb = None if progress is None else (lambda done, total, _m=m: progress(_m, done, total))
        results.append(simulate(data, sourcing=sourcing, days=days, progress=cb, **run_options))
    return CapacitySweep(
        kind=kind,
        multipliers=tuple(mults),
        results=tuple(results),
        fill_target=float(fill_target),
        on_time_target=float(on_time_target),
    )
