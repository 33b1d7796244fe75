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
from allocator.simulation.compare import TABLE_KPIS, CapacitySweep, Comparison
from allocator.simulation.engine import COMPONENTS, SimulationResult

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


def _kpi_table(columns: dict[str, dict[str, float]]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in columns)
    rows = []
    for key, fmt in TABLE_KPIS:
        cells = "".join(f"<td>{_fmt(fmt, col.get(key, math.nan))}</td>" for col in columns.values())
        rows.append(f"<tr><th>{key}</th>{cells}</tr>")
    return f"<table><tr><th>KPI</th>{head}</tr>{''.join(rows)}</table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 9px}
td{text-align:right}th{text-align:left;background:#f3f3f3}img{max-width:100%}
.note{color:#555;font-size:90%}
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
            f"<h2>Capacity sweep</h2><p>{html.escape(sweep.summary().splitlines()[0])}"
            f" (targets: online fill rate &ge; {sweep.fill_target:.0%}, pick-up on time "
            f"&ge; {sweep.on_time_target:.0%}; breaking point "
            f"{'none' if bp is None else f'x{bp:g}'}).</p>" + _kpi_table(sweep.table())
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
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body>
<h1>{html.escape(heading)}</h1>
<p>{html.escape(first.data.summary())}; {first.days} days from day {sc.start_day_of_year} of
the year, seed {first.data.seed}, volume x{first.volume:g}, pick capacity x{first.capacity:g}.
Policies: {html.escape(", ".join(runs))}. Promotion days are shaded in the plots.</p>
<h2>KPIs</h2>{_kpi_table({p: r.kpis.as_dict() for p, r in runs.items()})}
<p class="note">Fill rate: units sold (walk-in) or reserved (online) over units asked for.
Cost per order: packages, handling, transport and split penalty of served orders.
Oversells must be 0.</p>
{sweep_html}
<h2>Plots</h2>{figures}
<h2>Where the time went (seconds)</h2>
<table><tr><th>policy</th>{timing_head}</tr>{timing_rows}</table>
<h2>Scenario parameters</h2><table>{params}</table>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    logger.info("report written to %s", index)
    return index
