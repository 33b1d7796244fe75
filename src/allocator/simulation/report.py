"""An HTML report of simulation runs, with matplotlib plots (the ``plot`` extra).

matplotlib is imported inside :func:`write_report`, through its object-oriented
``Figure`` API, so neither importing this module nor writing a report changes the
caller's pyplot backend.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from allocator.exceptions import ValidationError
from allocator.simulation.compare import (
    TABLE_KPIS,
    CapacitySweep,
    Comparison,
    common_cost_per_order,
    interval,
)
from allocator.simulation.engine import COMPONENTS, SimulationResult
from allocator.simulation.kpis import LOST_CAUSES, TARGETS

__all__ = ["write_report"]

logger = logging.getLogger("allocator")


def _runs(results: Any) -> dict[str, SimulationResult]:
    if isinstance(results, Comparison):
        return dict(results.results)
    if isinstance(results, SimulationResult):
        return {results.sourcing: results}
    if isinstance(results, Mapping) and results:
        out = {}
        for name, r in results.items():
            if not isinstance(r, SimulationResult):
                raise ValidationError(
                    f"expected SimulationResult values, got {type(r).__name__}",
                    field="results",
                    code="wrong_dtype",
                )
            out[str(name)] = r
        return out
    raise ValidationError(
        "expected a Comparison, a SimulationResult or a mapping of them",
        field="results",
        code="wrong_dtype",
    )


def _figure(width: float = 9.0, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _shade_promotions(ax: Any, promotion: tuple[str, ...]) -> None:
    for d, name in enumerate(promotion):
        if name:
            ax.axvspan(d - 0.5, d + 0.5, color="#f4d35e", alpha=0.35, lw=0)


def _plot_fill(runs: dict[str, SimulationResult], path: Path) -> None:
    first = next(iter(runs.values()))
    names = first.kpis.channel_names
    fig = _figure(10.0, 3.4)
    axes = fig.subplots(1, len(names), sharey=True)
    for c, ax in enumerate(np.atleast_1d(axes)):
        for policy, r in runs.items():
            ax.plot(np.arange(r.days), r.daily.fill_rate[c], marker=".", label=policy)
        _shade_promotions(ax, first.daily.promotion)
        ax.set_title(f"fill rate: {names[c]}")
        ax.set_xlabel("day")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend()
    fig.savefig(path, dpi=90)


def _plot_cost(runs: dict[str, SimulationResult], path: Path) -> None:
    first = next(iter(runs.values()))
    fig = _figure()
    ax, ax2 = fig.subplots(1, 2)
    for policy, r in runs.items():
        ax.plot(np.arange(r.days), r.daily.cost_per_order, marker=".", label=policy)
        ax2.plot(np.arange(r.days), r.daily.orders, marker=".", label=policy)
    for a in (ax, ax2):
        _shade_promotions(a, first.daily.promotion)
        a.set_xlabel("day")
        a.grid(alpha=0.3)
    ax.set_title("fulfilment cost per served order")
    ax2.set_title("online orders per day")
    ax.legend()
    fig.savefig(path, dpi=90)


def _plot_utilisation(r: SimulationResult, path: Path) -> None:
    util = r.daily.utilisation
    names = r.data.network.location_names
    fig = _figure(9.0, max(2.5, 0.16 * len(names) + 1.2))
    ax = fig.subplots()
    image = ax.imshow(
        np.nan_to_num(util, nan=0.0),
        aspect="auto",
        cmap="magma",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("day")
    ax.set_title(f"pick capacity used ({r.sourcing})")
    fig.colorbar(image, ax=ax, label="share of capacity")
    fig.savefig(path, dpi=90)


def _plot_stock(r: SimulationResult, path: Path) -> None:
    fig = _figure()
    ax = fig.subplots()
    names = r.data.network.sku_names
    for i, k in enumerate(r.daily.top_skus.tolist()):
        ax.plot(np.arange(r.days), r.daily.top_stock[i], marker=".", label=names[k])
    _shade_promotions(ax, r.daily.promotion)
    ax.set_title(f"network on_hand of the best sellers ({r.sourcing})")
    ax.set_xlabel("day")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=90)


def _plot_sweep(sweep: CapacitySweep, path: Path) -> None:
    fig = _figure()
    ax = fig.subplots()
    m = np.array(sweep.multipliers)
    online = [r.kpis.fill_rate["online"] for r in sweep.results]
    market = [r.kpis.fill_rate["marketplace"] for r in sweep.results]
    on_time = [r.kpis.pickup_on_time for r in sweep.results]
    ax.plot(m, online, marker="o", label="fill rate online")
    ax.plot(m, market, marker="o", label="fill rate marketplace")
    ax.plot(m, on_time, marker="s", label="pick-up on time")
    ax.axhline(sweep.fill_target, color="grey", ls="--", lw=1)
    bp = sweep.breaking_point
    if bp is not None:
        ax.axvline(bp, color="red", ls=":", lw=1.5, label=f"breaking point x{bp:g}")
    ax.set_xlabel(f"{sweep.kind} multiplier")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"service against {sweep.kind}")
    fig.savefig(path, dpi=90)


def _fmt(fmt: str, v: float) -> str:
    return "n/a" if isinstance(v, float) and math.isnan(v) else fmt.format(v)


#: Human labels of the KPIs, with their units.
LABELS = {
    "season_objective": "Season objective (cost + lost units at penalty, currency)",
    "fill_rate_store": "Fill rate, walk-in (%)",
    "fill_rate_online": "Fill rate, own online (%)",
    "fill_rate_marketplace": "Fill rate, marketplace (%)",
    "lost_value": "Lost sales (currency, at price)",
    "orders": "Online orders",
    "split_rate": "Orders split over locations (%)",
    "packages_per_order": "Packages per order",
    "cost_per_order": "Fulfilment cost per served order (currency)",
    "avg_km": "Distance per order (km)",
    "pickup_on_time": "Pick-ups ready on time (%)",
    "utilisation_mean": "Pick capacity used, mean (%)",
    "utilisation_peak": "Pick capacity used, peak day (%)",
    "stockout_rate": "Stockout rate (% of position-days)",
    "turnover_days": "Turnover (days)",
    "order_error_rate": "Order error rate (% of orders)",
    "fulfilment_days_online": "Fulfilment time, own online (days)",
    "fulfilment_days_marketplace": "Fulfilment time, marketplace (days)",
    "oversells": "Oversells (must be 0)",
    "events": "Ledger events",
    "ledger_events_per_s": "Ledger events per second",
    "common_cost_per_order": "Fulfilment cost per order, orders every policy filled (currency)",
}
#: Engine speed figures, shown apart from the business KPIs.
SPEED_KPIS = ("events", "ledger_events_per_s")
#: KPIs where a lower value is better (for the answer).
LOWER_IS_BETTER = {
    "season_objective",
    "lost_value",
    "cost_per_order",
    "common_cost_per_order",
    "order_error_rate",
    "stockout_rate",
    "turnover_days",
}


def _kpi_table(columns: dict[str, dict[str, float]], speed: bool = False) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in columns)
    rows = []
    for key, fmt in TABLE_KPIS:
        if (key in SPEED_KPIS) != speed:
            continue
        cells = "".join(f"<td>{_fmt(fmt, col.get(key, math.nan))}</td>" for col in columns.values())
        label = html.escape(LABELS.get(key, key))
        rows.append(f"<tr data-kpi='{key}'><th title='{key}'>{label}</th>{cells}</tr>")
    return f"<table class='kpis'><tr><th>KPI</th>{head}</tr>{''.join(rows)}</table>"


def _seed_runs(
    results: Any, runs: dict[str, SimulationResult]
) -> dict[str, list[SimulationResult]]:
    if isinstance(results, Comparison) and results.by_seed is not None:
        return {p: list(rs) for p, rs in results.by_seed.items()}
    return {p: [r] for p, r in runs.items()}


def _answer(by_seed: dict[str, list[SimulationResult]]) -> str:
    """The lead: which policy wins on what, by how much, with the seeds' spread."""
    policies = list(by_seed)
    n_seeds = len(next(iter(by_seed.values())))
    values: dict[str, dict[str, list[float]]] = {}
    for key in ("season_objective", "lost_value", "fill_rate_online", "cost_per_order"):
        values[key] = {p: [r.kpis.as_dict()[key] for r in rs] for p, rs in by_seed.items()}
    common: dict[str, list[float]] = {p: [] for p in policies}
    for i in range(n_seeds):
        for p, v in zip(
            policies, common_cost_per_order([by_seed[p][i] for p in policies]), strict=True
        ):
            common[p].append(v)
    values["common_cost_per_order"] = common
    items = []
    if len(policies) == 1:
        r = by_seed[policies[0]][0]
        k = r.kpis
        items.append(
            f"<li><b>{html.escape(policies[0])}</b>: season objective "
            f"{k.season_objective:,.0f}, lost sales {k.lost_value:,.0f}, own-online fill "
            f"{k.fill_rate['online']:.1%}, fulfilment cost {k.cost_per_order:.2f} per order.</li>"
        )
    else:
        for key, vals in values.items():
            stats = {p: interval(v) for p, v in vals.items()}
            finite = {p: m for p, (m, _h) in stats.items() if not math.isnan(m)}
            if len(finite) < 2:
                continue
            lower = key in LOWER_IS_BETTER
            sign = 1.0 if lower else -1.0
            best = min(finite, key=lambda p: sign * finite[p])
            rest = {p: m for p, m in finite.items() if p != best}
            other = min(rest, key=lambda p: sign * rest[p])
            diff = finite[best] - finite[other]
            rel = diff / abs(finite[other]) if finite[other] else math.nan
            fmt = "{:.1%}" if key.startswith("fill_rate") else "{:,.2f}"
            # the paired difference over seeds: does its interval exclude 0?
            diffs = np.asarray(vals[best]) - np.asarray(vals[other])
            d_mean, d_half = interval(list(diffs))
            if math.isnan(d_half):
                spread = " (one seed: no interval)"
            else:
                spread = (
                    f" (difference {fmt.format(d_mean)}, 95 % interval ±{fmt.format(d_half)} "
                    f"over {n_seeds} seeds)"
                )
            sure = (
                ""
                if math.isnan(d_half) or abs(d_mean) > d_half
                else "; the difference is within the seeds' noise"
            )
            items.append(
                f"<li><b>{html.escape(best)}</b> is best on {html.escape(LABELS[key].lower())}: "
                f"{fmt.format(finite[best])} against {html.escape(other)}'s "
                f"{fmt.format(finite[other])} ({rel:+.1%}){spread}{sure}.</li>"
            )
    return "<ul class='answer'>" + "".join(items) + "</ul>"


def _targets(runs: dict[str, SimulationResult]) -> str:
    head = "".join(f"<th>{html.escape(p)}</th>" for p in runs)
    rows = []
    for key, op, value in TARGETS:
        cells = []
        for r in runs.values():
            v = r.kpis.as_dict().get(key, math.nan)
            ok = (v < value) if op == "<" else (v <= value)
            fmt = "{:.1f}" if key == "turnover_days" else "{:.1%}"
            mark = "meets" if ok else "misses"
            cells.append(f"<td class='{mark}'>{_fmt(fmt, v)} ({mark})</td>")
        tgt = f"{value:g} days" if key == "turnover_days" else f"{value:.0%}"
        label = html.escape(LABELS[key])
        rows.append(f"<tr data-kpi='{key}'><th>{label} {op} {tgt}</th>{''.join(cells)}</tr>")
    return f"<table class='targets'><tr><th>target</th>{head}</tr>{''.join(rows)}</table>"


def _causes(runs: dict[str, SimulationResult]) -> str:
    head = "".join(f"<th>{html.escape(p)}</th>" for p in runs)
    rows = []
    for cause in LOST_CAUSES:
        vals = [(r.kpis.lost_by_cause or {}).get(cause, 0) for r in runs.values()]
        if not any(vals):
            continue
        cells = "".join(f"<td>{v:,}</td>" for v in vals)
        rows.append(f"<tr><th>{html.escape(cause.replace('_', ' '))}</th>{cells}</tr>")
    if not rows:
        return "<p>No units were lost.</p>"
    return (
        f"<table class='causes'><tr><th>lost units by cause</th>{head}</tr>{''.join(rows)}</table>"
    )


def _sweep_warning(sweep: CapacitySweep, first: SimulationResult) -> str:
    """A warning when the sweep's days hold no promotion but the scenario has one
    within the main runs (the sweep then speaks for ordinary days only)."""
    swept = set(sweep.results[0].daily.promotion) - {""} if sweep.results else set()
    main = first.daily.promotion
    peaks = [d for d, name in enumerate(main) if name]
    if swept or not peaks:
        return ""
    d = peaks[0]
    util = first.daily.utilisation
    peak_util = float(np.nanmax(util[:, d])) if np.isfinite(util[:, d]).any() else math.nan
    fill = float(first.daily.fill_rate[1, d])
    return (
        "<p class='warning'><b>Warning:</b> the sweep ran "
        f"{sweep.results[0].days} days without a promotion, but the main run's "
        f"{html.escape(main[d])} peak on day {d} used {peak_util:.0%} of the busiest "
        f"location's pick capacity and filled {fill:.0%} of own-online units. The "
        "breaking point above holds for ordinary days only; sweep a window that "
        "contains the peak (a later start day, or more sweep days).</p>"
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 9px}
td{text-align:right}th{text-align:left;background:#f3f3f3}img{max-width:100%}
.note{color:#555;font-size:90%}.warning{background:#fff3cd;padding:6px 10px}
.misses{color:#a00}.meets{color:#070}ul.answer li{margin:4px 0}
"""


def write_report(
    results: Comparison | SimulationResult | Mapping[str, SimulationResult],
    directory: str | Path,
    *,
    sweep: CapacitySweep | None = None,
    title: str | None = None,
) -> Path:
    """Write ``index.html`` and its PNG plots into ``directory``; return the HTML path.

    Plots: daily fill rate per channel and policy, cost per order and orders per day,
    a pick-capacity heat map (location x day) and best-seller stock for each policy,
    and, with ``sweep``, service against the multiplier. Promotion days are shaded.

    Raises
    ------
    ValidationError
        ``results`` of the wrong type.
    ImportError
        matplotlib is not installed (``pip install allocator[plot]``).
    """
    runs = _runs(results)
    by_seed = _seed_runs(results, runs)
    if sweep is not None and not isinstance(sweep, CapacitySweep):
        raise ValidationError("expected a CapacitySweep", field="sweep", code="wrong_dtype")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(runs.values()))
    sc = first.scenario
    images: list[tuple[str, str]] = []
    _plot_fill(runs, out / "fill_rate.png")
    images.append(("Daily fill rate per channel", "fill_rate.png"))
    _plot_cost(runs, out / "cost_per_order.png")
    images.append(("Cost per order and order volume", "cost_per_order.png"))
    for policy, r in runs.items():
        slug = "".join(ch if ch.isalnum() else "_" for ch in policy)
        _plot_utilisation(r, out / f"utilisation_{slug}.png")
        images.append((f"Pick capacity utilisation: {policy}", f"utilisation_{slug}.png"))
        _plot_stock(r, out / f"stock_{slug}.png")
        images.append((f"Best-seller stock: {policy}", f"stock_{slug}.png"))
    sweep_html = ""
    if sweep is not None:
        _plot_sweep(sweep, out / "sweep.png")
        images.append((f"Capacity sweep ({sweep.kind})", "sweep.png"))
        bp = sweep.breaking_point
        sweep_html = (
            f"<h2>Where service breaks</h2><p class='sweep'>"
            f"{html.escape(sweep.summary().splitlines()[0])}"
            f" (targets: online fill rate &ge; {sweep.fill_target:.0%}, pick-up on time "
            f"&ge; {sweep.on_time_target:.0%}; breaking point "
            f"{'none' if bp is None else f'x{bp:g}'}).</p>"
            + _sweep_warning(sweep, first)
            + _kpi_table(sweep.table())
        )
    timing_rows = "".join(
        f"<tr><th>{html.escape(p)}</th>"
        + "".join(f"<td>{r.timings.get(k, 0.0):.2f}</td>" for k in (*COMPONENTS, "total"))
        + "</tr>"
        for p, r in runs.items()
    )
    timing_head = "".join(f"<th>{k}</th>" for k in (*COMPONENTS, "total"))
    params = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in vars(sc).items()
    )
    figures = "".join(
        f"<h3>{html.escape(caption)}</h3><img src='{name}' alt='{html.escape(caption)}'>"
        for caption, name in images
    )
    heading = title or f"Simulation report: {sc.name}"
    seeds = len(next(iter(by_seed.values())))
    kpi_html = _kpi_table({p: r.kpis.as_dict() for p, r in runs.items()})
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body>
<h1>{html.escape(heading)}</h1>
<h2 id="answer">The answer</h2>{_answer(by_seed)}
<p>{html.escape(first.data.summary())}; {first.days} days from day {sc.start_day_of_year} of
the year, {seeds} seed{"s" if seeds > 1 else ""} (first: {first.data.seed}), volume
x{first.volume:g}, pick capacity x{first.capacity:g}. Policies:
{html.escape(", ".join(runs))}. Promotion days are shaded in the plots.</p>
<h2>The retailer's targets</h2>{_targets(runs)}
<h2>Business KPIs (seed {first.data.seed})</h2>{kpi_html}
<p class="note">Fill rate: units sold (walk-in) or reserved (online) over units asked for.
Fulfilment cost: packages, handling, transport and split penalty of served orders; the
season objective adds every lost unit at the cost model's penalty, over all orders and
walk-in customers, so policies compare on the same demand. Oversells must be 0.</p>
<h2>Why units were lost</h2>{_causes(runs)}
{sweep_html}
<h2>Plots</h2>{figures}
<h2>Engine speed (not business KPIs)</h2>
{_kpi_table({p: r.kpis.as_dict() for p, r in runs.items()}, speed=True)}
<table class="timings"><tr><th>seconds</th>{timing_head}</tr>{timing_rows}</table>
<h2>Scenario parameters</h2><table>{params}</table>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    logger.info("report written to %s", index)
    return index
