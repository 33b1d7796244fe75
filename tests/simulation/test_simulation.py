"""Simulation loop: determinism, conservation, KPIs recomputed from the event log."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allocator.events import EventKind, ResultCode
from allocator.exceptions import ValidationError
from allocator.ledger import Ledger
from allocator.scenarios import CHANNELS, Promotion, Scenario, department_store
from allocator.simulation import (
    CapacitySweep,
    SimulationResult,
    capacity_sweep,
    compare,
    simulate,
    write_report,
)
from allocator.sourcing import CostModel, Service, haversine_km

DAYS = 4


def tiny(**changes: Any) -> Scenario:
    """Four stores, one DC, 60 SKUs; day 2 is an 11.11 peak (6x online)."""
    base = dict(
        name="tiny",
        num_stores=4,
        num_dcs=1,
        num_skus=60,
        walk_in_units=40.0,
        online_orders=80.0,
        marketplace_orders=25.0,
        store_pick_capacity=40,
        dc_pick_capacity=400,
        history_days=7,
        start_day_of_year=312,
        lead_time_days=(1, 2),
        return_days=(0, 1),
        pickup_share=0.3,
        abandon_share=0.3,
        return_share=0.3,
    )
    return department_store(**{**base, **changes})


@pytest.fixture(scope="module")
def run() -> SimulationResult:
    return simulate(tiny(), days=DAYS, seed=3)


def _equal_kpis(a: dict[str, float], b: dict[str, float], skip: tuple[str, ...] = ()) -> bool:
    for key in a:
        if key in skip:
            continue
        x, y = a[key], b[key]
        if not ((math.isnan(x) and math.isnan(y)) or x == y):
            return False
    return True


def test_same_seed_identical_kpis_and_logs(run: SimulationResult) -> None:
    again = simulate(tiny(), days=DAYS, seed=3)
    assert _equal_kpis(run.kpis.as_dict(), again.kpis.as_dict(), skip=("ledger_events_per_s",))
    assert run.log is not None and again.log is not None
    for name in run.log.FIELDS:
        assert np.array_equal(getattr(run.log, name), getattr(again.log, name))
    assert run.ledger.state_digest() == again.ledger.state_digest()
    other = simulate(tiny(), days=DAYS, seed=4)
    assert other.kpis.as_dict()["orders"] != run.kpis.as_dict()["orders"] or not np.array_equal(
        other.daily.demand_units, run.daily.demand_units
    )


def test_run_exercises_every_part(run: SimulationResult) -> None:
    log = run.log
    assert log is not None
    counts = log.counts()
    for kind in (
        "receive",
        "sale",
        "reserve",
        "commit",
        "expire",
        "transfer_out",
        "transfer_in",
        "return",
        "set_fence",
        "set_cap",
    ):
        assert counts.get(kind, 0) > 0, kind
    assert run.kpis.expired > 0
    assert run.kpis.returned_units > 0
    assert run.daily.promotion[2] == "11.11"
    # the peak day has many more online orders than the day before
    assert run.daily.orders[2] > 3 * run.daily.orders[1]


def test_no_oversells(run: SimulationResult) -> None:
    assert run.kpis.oversells == 0
    log = run.log
    assert log is not None
    commits = log.kind == EventKind.COMMIT
    assert (log.code[commits] == ResultCode.OK).all()
    ledger = run.ledger
    assert (np.asarray(ledger.on_hand) >= np.asarray(ledger.reserved)).all()
    assert (ledger.available_all() >= 0).all()


def test_units_are_conserved(run: SimulationResult) -> None:
    log = run.log
    assert log is not None

    def units(kind: EventKind) -> int:
        return int(log.qty[log.ok(kind)].sum())

    on_hand_in = units(EventKind.RECEIVE) + units(EventKind.RETURN) + units(EventKind.TRANSFER_IN)
    on_hand_out = units(EventKind.SALE) + units(EventKind.COMMIT) + units(EventKind.TRANSFER_OUT)
    assert not log.ok(EventKind.ADJUST).any()
    ledger = run.ledger
    assert on_hand_in - on_hand_out == int(np.asarray(ledger.on_hand).sum())
    assert units(EventKind.TRANSFER_OUT) - units(EventKind.TRANSFER_IN) == int(
        np.asarray(ledger.in_transit).sum()
    )
    assert units(EventKind.RETURN_NONSELLABLE) == int(np.asarray(ledger.nonsellable).sum())
    # per position too
    net = run.data.network
    delta = np.zeros(net.num_skus * net.num_locations, dtype=np.int64)
    key = log.sku * net.num_locations + log.location
    for kind, sign in (
        (EventKind.RECEIVE, 1),
        (EventKind.RETURN, 1),
        (EventKind.TRANSFER_IN, 1),
        (EventKind.SALE, -1),
        (EventKind.TRANSFER_OUT, -1),
    ):
        m = log.ok(kind)
        np.add.at(delta, key[m], sign * log.qty[m])
    # commits name a reservation: find its position through the reserve event
    res_key = dict(
        zip(
            log.id[log.ok(EventKind.RESERVE)].tolist(),
            key[log.ok(EventKind.RESERVE)].tolist(),
            strict=True,
        )
    )
    m = log.ok(EventKind.COMMIT)
    for ref, q in zip(log.ref[m].tolist(), log.qty[m].tolist(), strict=True):
        delta[res_key[ref]] -= q
    pos_key = np.asarray(ledger.position_sku) * net.num_locations + ledger.position_location
    assert np.array_equal(delta[pos_key], np.asarray(ledger.on_hand))


def test_replaying_the_log_reproduces_the_ledger(run: SimulationResult) -> None:
    log = run.log
    assert log is not None
    fresh = Ledger(run.data.network)
    result = fresh.apply(log.to_events())
    assert np.array_equal(result.codes, log.code)
    assert fresh.state_digest() == run.ledger.state_digest()


def test_kpis_recomputed_from_the_logs(run: SimulationResult) -> None:
    log, demand = run.log, run.demand
    assert log is not None and demand is not None
    sc, net, kpis = run.scenario, run.data.network, run.kpis
    W = sc.waves_per_day
    # fill rate and lost units per channel
    asked = np.bincount(demand.channel, weights=demand.qty, minlength=3)
    sold = log.ok(EventKind.SALE)
    reserved = log.ok(EventKind.RESERVE)
    got = np.bincount(log.channel[sold], weights=log.qty[sold], minlength=3)
    got += np.bincount(log.channel[reserved], weights=log.qty[reserved], minlength=3)
    assert np.array_equal(asked, kpis.demand_units)
    assert np.array_equal(got, kpis.filled_units)
    for c, name in enumerate(CHANNELS):
        assert kpis.fill_rate[name] == pytest.approx(got[c] / asked[c])
    lost_value = float((demand.qty * net.sku_price[demand.sku]).sum()) - float(
        (log.qty[sold] * net.sku_price[log.sku[sold]]).sum()
        + (log.qty[reserved] * net.sku_price[log.sku[reserved]]).sum()
    )
    assert kpis.lost_value == pytest.approx(lost_value)
    # orders, packages, splits, km and cost of served orders
    online = demand.order > 0
    order_ids = np.unique(demand.order[online])
    assert kpis.orders == order_ids.shape[0]
    first = {}
    for i in np.flatnonzero(online).tolist():
        first.setdefault(int(demand.order[i]), i)
    costs = CostModel()
    packages: dict[int, set[int]] = defaultdict(set)
    cost: dict[int, float] = defaultdict(float)
    km: dict[int, float] = defaultdict(float)
    for i in np.flatnonzero(reserved).tolist():
        o, loc, q = int(log.order[i]), int(log.location[i]), int(log.qty[i])
        row = first[o]
        if demand.service[row] == Service.PICKUP:
            p = int(demand.pickup_location[row])
            lat, lon = net.lat[p], net.lon[p]
            d = 0.0 if loc == p else float(haversine_km(net.lat[loc], net.lon[loc], lat, lon))
        else:
            d = float(haversine_km(net.lat[loc], net.lon[loc], demand.lat[row], demand.lon[row]))
        m = net.cost_multiplier[loc]
        if loc not in packages[o]:
            packages[o].add(loc)
            cost[o] += m * costs.per_package
            km[o] += d
        cost[o] += m * costs.per_unit * q + costs.per_unit_km * d * q
    served = len(packages)
    assert kpis.served == served
    npk = np.array([len(v) for v in packages.values()])
    assert kpis.packages_per_order == pytest.approx(npk.mean())
    assert kpis.split_rate == pytest.approx((npk > 1).mean())
    assert kpis.cost_per_order == pytest.approx(sum(cost.values()) / served)
    assert kpis.avg_km == pytest.approx(sum(km.values()) / served)
    # pick-up on time: every unit reserved at the pick-up store itself
    pick_orders = [o for o, r in first.items() if demand.service[r] == Service.PICKUP]
    asked_by_order = defaultdict(int)
    for i in np.flatnonzero(online).tolist():
        asked_by_order[int(demand.order[i])] += int(demand.qty[i])
    at_store = defaultdict(int)
    for i in np.flatnonzero(reserved).tolist():
        o = int(log.order[i])
        if int(log.location[i]) == int(demand.pickup_location[first[o]]):
            at_store[o] += int(log.qty[i])
    on_time = sum(at_store[o] == asked_by_order[o] for o in pick_orders)
    assert kpis.pickup_orders == len(pick_orders)
    assert kpis.pickup_on_time == pytest.approx(on_time / len(pick_orders))
    # pick capacity utilisation per location and day
    picked = np.zeros((net.num_locations, run.days), dtype=np.int64)
    np.add.at(picked, (log.location[reserved], log.wave[reserved] // W), log.qty[reserved])
    assert np.array_equal(picked, run.daily.picked_units)
    cap = run.daily.capacity.astype(float)
    assert np.allclose(np.nanmean(picked / cap[:, None], axis=1), kpis.utilisation)
    assert (picked <= cap[:, None]).all()
    # returns and expired pick-ups
    back = log.ok(EventKind.RETURN) | log.ok(EventKind.RETURN_NONSELLABLE)
    assert kpis.returned_units == int(log.qty[back].sum())
    committed = set(log.ref[log.ok(EventKind.COMMIT)].tolist())
    last_wave = run.days * W - 1
    expired = sum(
        1
        for rid, exp in zip(
            log.id[reserved].tolist(), log.expires_at[reserved].tolist(), strict=True
        )
        if rid not in committed and exp <= last_wave
    )
    assert kpis.expired == expired
    # events and the ledger's rate
    assert kpis.events == len(log)
    assert kpis.ledger_events_per_s > 0


def test_more_capacity_serves_at_least_as_many_orders() -> None:
    data = tiny().build(0)
    low = simulate(data, days=3, capacity=0.2, keep_log=False)
    high = simulate(data, days=3, capacity=5.0, keep_log=False)
    assert low.kpis.orders == high.kpis.orders  # the same customers
    assert np.array_equal(low.daily.demand_units, high.daily.demand_units)
    assert high.kpis.fill_rate["online"] > low.kpis.fill_rate["online"]
    assert (low.daily.picked_units <= low.daily.capacity[:, None]).all()


def test_no_replenishment_only_runs_stock_down() -> None:
    r = simulate(tiny(return_share=0.0), days=3, replenishment=False)
    assert r.log is not None
    assert not r.log.ok(EventKind.TRANSFER_OUT).any()
    receipts = r.log.ok(EventKind.RECEIVE)
    assert (r.log.wave[receipts] == 0).all()  # only the opening stock
    assert np.all(np.diff(r.daily.on_hand) <= 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sourcing": "nope"}, "sourcing"),
        ({"days": 0}, "days"),
        ({"days": 2.5}, "days"),
        ({"volume": 0.0}, "volume"),
        ({"volume": float("inf")}, "volume"),
        ({"capacity": -1.0}, "capacity"),
        ({"seed": -3}, "seed"),
        ({"costs": "cheap"}, "costs"),
        ({"sourcing_options": 3}, "sourcing_options"),
    ],
)
def test_bad_arguments_fail_before_running(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        simulate(tiny(), **kwargs)
    assert info.value.field == field


def test_bad_scenario_fails_before_running() -> None:
    with pytest.raises(ValidationError) as info:
        simulate(tiny(num_stores=0), days=1)  # walk-in demand needs stores
    assert info.value.code == "no_location_for_channel"
    with pytest.raises(ValidationError):
        simulate("department_store", days=1)  # type: ignore[arg-type]
    data = tiny().build(1)
    with pytest.raises(ValidationError) as info:
        simulate(data, seed=2)
    assert info.value.field == "seed"


def test_compare_runs_policies_on_the_same_customers() -> None:
    data = tiny().build(0)
    cmp = compare(data, ["greedy"], days=2, keep_log=False)
    single = simulate(data, days=2, keep_log=False)
    assert cmp.policies == ("greedy",)
    assert _equal_kpis(cmp.table()["greedy"], single.kpis.as_dict(), skip=("ledger_events_per_s",))
    assert "fill_rate_online" in cmp.summary()
    for bad in ([], ["greedy", "greedy"], ["greedy", "nope"]):
        with pytest.raises(ValidationError):
            compare(data, bad, days=1)


def test_capacity_sweep_finds_where_service_breaks() -> None:
    sweep = capacity_sweep(
        tiny(promotions=()), (8.0, 0.25), kind="volume", days=2, fill_target=0.8, keep_log=False
    )
    assert isinstance(sweep, CapacitySweep)
    assert sweep.multipliers == (0.25, 8.0)
    low, high = sweep.results
    assert high.kpis.orders > 10 * low.kpis.orders
    assert high.kpis.fill_rate["online"] < low.kpis.fill_rate["online"]
    ok = sweep.ok()
    assert ok[0] and not ok[1]
    assert sweep.breaking_point == 8.0
    assert "service breaks at volume x8" in sweep.summary()
    cap = capacity_sweep(tiny(), (0.05, 3.0), kind="capacity", days=1, keep_log=False)
    assert cap.kind == "capacity"
    assert cap.results[0].kpis.fill_rate["online"] < cap.results[1].kpis.fill_rate["online"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "speed"}, "kind"),
        ({"multipliers": ()}, "multipliers"),
        ({"multipliers": (1.0, -2.0)}, "multipliers"),
        ({"fill_target": 1.5}, "fill_target"),
        ({"sourcing": "nope"}, "sourcing"),
    ],
)
def test_capacity_sweep_bad_arguments(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        capacity_sweep(tiny(), **kwargs)
    assert info.value.field == field


def test_report_writes_html_and_plots(run: SimulationResult, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    sweep = capacity_sweep(tiny(), (0.5, 2.0), days=1, keep_log=False)
    path = write_report({"greedy": run}, tmp_path / "rep", sweep=sweep)
    assert path.name == "index.html"
    text = path.read_text()
    for name in ("fill_rate.png", "cost_per_order.png", "utilisation_greedy.png", "sweep.png"):
        assert name in text
        assert (path.parent / name).stat().st_size > 1000
    assert "fill_rate_online" in text and "oversells" in text
    with pytest.raises(ValidationError):
        write_report(42, tmp_path)  # type: ignore[arg-type]


def test_result_views(run: SimulationResult) -> None:
    frame = run.to_frame()
    assert list(frame["day"]) == list(range(DAYS))
    assert "fill_rate_online" in frame.columns
    kpi_frame = run.kpis.to_frame()
    assert "oversells" in set(kpi_frame["kpi"])
    assert "oversells 0" in run.summary()
    assert set(run.timings) >= {"ledger", "sourcing", "replenishment", "total"}
    assert run.log is not None and len(run.log.to_frame()) == len(run.log)


def test_cli_simulate_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from allocator.cli import main

    code = main(
        [
            "simulate",
            "--days",
            "1",
            "--stores",
            "3",
            "--skus",
            "40",
            "--online-orders",
            "50",
            "--json",
            "--sweep",
            "volume",
            "--multipliers",
            "1,2",
            "--sweep-days",
            "1",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["kpis"]) == {"greedy"}
    assert doc["kpis"]["greedy"]["oversells"] == 0
    assert doc["sweep"]["multipliers"] == [1.0, 2.0]
    code = main(
        ["simulate", "--days", "1", "--skus", "40", "--no-progress", "--report", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "fill_rate_online" in out and "report:" in out
    assert (tmp_path / "index.html").exists()
    assert main(["simulate", "--days", "1", "--sourcing", "nope", "--no-progress"]) == 2


def test_demo_runs_small(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    import allocator.commands.demo as demo
    import allocator.scenarios as scenarios

    small = scenarios.department_store(
        num_stores=4, num_skus=80, online_orders=60.0, marketplace_orders=20.0
    )
    monkeypatch.setattr(scenarios, "department_store", lambda: small)
    monkeypatch.setattr(demo, "DAYS", 1)
    monkeypatch.setattr(demo, "SWEEP", (1.0, 2.0))
    monkeypatch.setattr(demo, "SWEEP_DAYS", 1)
    monkeypatch.setenv("ALLOCATOR_REPORT_DIR", str(tmp_path))
    assert demo.run_demo(None) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'index.html'}" in out
    assert (tmp_path / "index.html").exists()


def test_promotion_free_scenario_has_flat_multipliers() -> None:
    sc = tiny(promotions=(Promotion(0, 1, 1.0, 1.0),), weekly=(1.0,) * 7)
    assert all(sc.multipliers(d) == (1.0, 1.0) for d in range(10))


def test_season_objective_and_causes_add_up(run: SimulationResult) -> None:
    """The objective is fulfilment cost plus every lost unit at its penalty; the lost
    units by cause add up to the units lost; outcomes cover every online order."""
    k = run.kpis
    assert k.lost_by_cause is not None
    assert sum(k.lost_by_cause.values()) == int(k.lost_units.sum())
    out = run.outcomes
    assert len(out) == k.orders and (np.diff(out.id) > 0).all()
    assert (out.filled <= out.units).all() and (out.cost >= 0).all()
    assert float(out.cost.sum()) == pytest.approx(float(run.daily.cost.sum()))
    assert k.season_objective >= float(run.daily.cost.sum())
    assert 0.0 <= k.order_error_rate <= 1.0
    assert k.fulfilment_days is not None and np.isnan(k.fulfilment_days[0])
    assert (k.fulfilment_days[1:] > 0).all()
    d = k.as_dict()
    for key in ("season_objective", "order_error_rate", "fulfilment_days_online", "lost_fenced"):
        assert key in d


def test_future_policy_runs_and_compares_over_seeds() -> None:
    cmp = compare(tiny(), ["greedy", "future"], days=2, seeds=[0, 1], keep_log=False)
    assert cmp.seeds == (0, 1)
    assert cmp.by_seed is not None and len(cmp.by_seed["future"]) == 2
    objective = cmp.per_seed("season_objective")
    assert all(len(v) == 2 and all(np.isfinite(v)) for v in objective.values())
    common = cmp.per_seed("common_cost_per_order")
    assert all(len(v) == 2 for v in common.values())
    mean, half = cmp.interval("lost_value")["greedy"]
    assert np.isfinite(mean) and np.isfinite(half)
    with pytest.raises(ValidationError):
        compare(tiny().build(0), ["greedy"], days=1, seeds=[0, 1])
