"""What an analyst touches: long sales frames with dates, positions the ledger has
never held, the per-position replenishment report, unfunded lines, progress."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from allocator import Ledger, Network, NetworkData
from allocator.exceptions import ValidationError
from allocator.replenishment import (
    AlertKind,
    Forecast,
    replenish,
    sales_history,
    unheld_positions,
)

pd = pytest.importorskip("pandas")


def _network() -> NetworkData:
    net = Network()
    for ch in ("store", "online"):
        net.add_channel(ch)
    for name in ("S1", "S2", "DC"):
        net.add_location(name, kind="store", lat=31.2, lon=121.5)
    for sku, price in (("TEE", 20.0), ("CAP", 12.0)):
        net.add_sku(sku, price=price, unit_cost=price / 2)
    return net.build()


def _sales(dates: Any) -> Any:
    return pd.DataFrame(
        {
            "sku": ["TEE", "TEE", "TEE", "CAP"],
            "location": ["S1", "S1", "S2", "S1"],
            "date": dates,
            "qty": [2, 3, 1, 4],
        }
    )


def test_long_sales_with_dates_are_binned_into_days() -> None:
    net = _network()
    led = Ledger(net)
    led.receive(["TEE", "TEE", "CAP"], ["S1", "S2", "S1"], [5, 5, 5])
    strings = ["2024-05-01", "2024-05-03", "2024-05-03", "2024-05-02"]
    hist = sales_history(_sales(strings), led)
    # rows: (TEE, S1), (TEE, S2), (CAP, S1); columns: May 1, 2, 3
    assert hist.tolist() == [[2.0, 0.0, 3.0], [0.0, 0.0, 1.0], [0.0, 4.0, 0.0]]
    typed = sales_history(_sales(pd.to_datetime(strings)), led)
    np.testing.assert_array_equal(hist, typed)
    as_numpy = sales_history(_sales(np.array(strings, dtype="datetime64[D]")), led)
    np.testing.assert_array_equal(hist, as_numpy)


def test_weeks_and_a_fixed_window() -> None:
    net = _network()
    led = Ledger(net)
    led.receive(["TEE", "TEE", "CAP"], ["S1", "S2", "S1"], [5, 5, 5])
    sales = _sales(["2024-05-06", "2024-05-12", "2024-05-13", "2024-04-01"])
    weekly = sales_history(sales, led, freq="W")
    assert weekly.shape == (3, 7)  # the weeks from 1 April to 13 May
    assert weekly[0].tolist() == [0, 0, 0, 0, 0, 5.0, 0]
    window = sales_history(sales, led, start="2024-05-06", end="2024-05-19")
    assert window.shape == (3, 14)
    assert window[2].sum() == 0.0  # the April sale is outside the window


def test_replenish_reads_a_long_frame_with_dates() -> None:
    net = _network()
    led = Ledger(net)
    led.receive(["TEE", "TEE", "CAP"], ["S1", "S2", "S1"], [1, 40, 1])
    days = pd.date_range("2024-05-01", periods=14, freq="D")
    rows = [
        {"sku": "TEE", "location": loc, "date": d, "qty": q}
        for d in days
        for loc, q in (("S1", 3), ("S2", 1))
    ]
    rows += [{"sku": "CAP", "location": "S1", "date": d, "qty": 2} for d in days]
    plan = replenish(net, led, pd.DataFrame(rows), forecast_method="moving_average", lead_time=2)
    np.testing.assert_allclose(plan.forecast_mean, [3.0, 1.0, 2.0])
    assert plan.num_buys + plan.num_transfers > 0


def test_bad_dates_and_columns_are_named() -> None:
    net = _network()
    led = Ledger(net)
    led.receive("TEE", "S1", 5)
    bad = _sales(["2024-05-01", "yesterday", "2024-05-03", "2024-05-02"])
    led.receive(["TEE", "CAP"], ["S2", "S1"], [1, 1])
    with pytest.raises(ValidationError) as info:
        sales_history(bad, led)
    assert (info.value.field, info.value.row) == ("demand.date", 1)
    extra = _sales(["2024-05-01"] * 4).assign(price=1.0)
    with pytest.raises(ValidationError) as info:
        sales_history(extra, led)
    assert info.value.field == "demand.price"
    with pytest.raises(ValidationError) as info:
        sales_history(_sales(["2024-05-01"] * 4).drop(columns="qty"), led)
    assert info.value.field == "demand.qty"


def test_sales_for_unheld_positions_are_named_with_what_to_do() -> None:
    net = _network()
    led = Ledger(net)
    led.receive("TEE", "S1", 5)  # the ledger holds only (TEE, S1)
    sales = _sales(["2024-05-01", "2024-05-02", "2024-05-02", "2024-05-03"])
    with pytest.raises(ValidationError) as info:
        replenish(net, led, sales)
    text = str(info.value)
    assert info.value.code == "position_not_held"
    assert "TEE at S2" in text and "CAP at S1" in text
    assert "ledger.adjust(sku, location, 0)" in text
    new = unheld_positions(sales, led)
    assert sorted(zip(new["sku"], new["location"], strict=True)) == [
        ("CAP", "S1"),
        ("TEE", "S2"),
    ]
    # what the message says to do: open them with a zero count, then they are bought
    assert led.adjust(new["sku"].to_numpy(), new["location"].to_numpy(), 0).ok
    plan = replenish(net, led, sales, lead_time=2)
    bought = {
        (net.sku_names[plan.suggestion_sku[i]], net.location_names[plan.location[d]])
        for i, d in enumerate(plan.destination.tolist())
    }
    assert {("TEE", "S2"), ("CAP", "S1")} <= bought
    assert len(unheld_positions(sales, led)) == 0


REPORT_COLUMNS = [
    "sku",
    "location",
    "on_hand",
    "reserved",
    "in_transit",
    "on_order",
    "backorders",
    "inventory_position",
    "forecast",
    "forecast_std",
    "lead_time",
    "review_period",
    "safety_stock",
    "reorder_point",
    "order_up_to_level",
    "transfer_in",
    "transfer_from",
    "transfer_out",
    "buy_qty",
    "suggested_qty",
    "source",
    "unit_cost",
    "cost",
    "funded",
    "days_of_cover",
    "days_of_cover_after",
    "below_reorder_point",
    "zero_available",
    "low_cover",
    "shelf_blocked",
]


def test_the_report_has_one_row_per_position_like_an_erp_replenishment_report() -> None:
    net = _network()
    led = Ledger(net)
    led.receive(
        ["TEE", "TEE", "TEE", "CAP", "CAP"], ["S1", "S2", "DC", "S1", "S2"], [1, 2, 90, 0 + 1, 3]
    )
    led.reserve("TEE", "S2", 1, channel="online")
    fc = Forecast(np.array([5.0, 5.0, 1.0, 4.0, 4.0]), np.ones(5))
    on_order = np.array([0, 0, 0, 6, 0])
    plan = replenish(
        net, led, fc, lead_time=np.array([2.0, 2.0, 2.0, 3.0, 3.0]), budget=30.0, on_order=on_order
    )
    report = plan.to_frame()
    assert list(report.columns) == REPORT_COLUMNS
    assert len(report) == led.num_positions
    row = report.set_index(["sku", "location"]).loc[("TEE", "S2")]
    assert row["on_hand"] == 2 and row["reserved"] == 1 and row["lead_time"] == 2.0
    assert row["reorder_point"] == plan.reorder_point[1]
    assert report.loc[3, "on_order"] == 6
    # transfers from the DC; purchases from the supplier, funded while the budget lasts
    moved = report[report["transfer_in"] > 0]
    assert len(moved) and set(moved["transfer_from"]) == {"DC"}
    assert all("DC" in s for s in moved["source"])
    assert report["transfer_out"].sum() == report["transfer_in"].sum()
    assert report["suggested_qty"].equals(report["transfer_in"] + report["buy_qty"])
    for flag in ("below_reorder_point", "zero_available", "low_cover", "shelf_blocked"):
        assert report[flag].dtype == bool
    kinds = np.zeros(led.num_positions, np.int64)
    kinds[plan.alert_position] = plan.alert_kind
    assert report["below_reorder_point"].tolist() == [
        bool(k & AlertKind.BELOW_REORDER_POINT) for k in kinds
    ]
    # unfunded purchases are listed, and marked in the report
    assert plan.unfunded == len(plan.unfunded_frame()) > 0
    left = plan.unfunded_frame()
    assert (~left["funded"]).all() and (left["action"] == "buy").all()
    unfunded_rows = report[~report["funded"]]
    assert len(unfunded_rows) == plan.unfunded
    assert (unfunded_rows["buy_qty"] > 0).all()
    assert all("supplier" in s for s in unfunded_rows["source"])
    everything = plan.lines_frame(include_unfunded=True)
    assert len(everything) == len(plan) + plan.unfunded
    spent = report.loc[report["funded"], "buy_qty"] * report.loc[report["funded"], "unit_cost"]
    assert spent.fillna(0).sum() == pytest.approx(plan.spent)


def test_progress_callback_and_a_bar_that_hides_off_a_terminal(capsys: Any) -> None:
    net = _network()
    led = Ledger(net)
    led.receive(["TEE", "CAP"], ["S1", "S1"], [1, 1])
    hist = np.ones((2, 7))
    seen: list[tuple[str, int, int]] = []
    replenish(net, led, hist, progress=lambda *a: seen.append(a))
    assert seen[-1] == ("done", 2, 2) and all(d <= t for _, d, t in seen)
    replenish(net, led, hist, progress=True)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""
