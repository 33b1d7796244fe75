"""Channel-split reservation: known answers, kernel vs naive twin, ledger round trip, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from allocator import Ledger, Network, NetworkData, ValidationError
from allocator._kernels import channels as K
from allocator._reference.channels import naive_allocate
from allocator.channels import STOCK_MAX, ChannelAllocation, ChannelForecast, allocate_channels
from allocator.exceptions import DTypeError, UnknownNameError
from allocator.safety import safety_stock
from tests.conftest import make_small_network

CHANNELS = ("store", "online", "marketplace")


def one_position(stock: int, channels: tuple[str, ...] = CHANNELS) -> tuple[NetworkData, Ledger]:
    net = Network()
    for ch in channels:
        net.add_channel(ch)
    net.add_location("S1", kind="store", lat=0.0, lon=0.0)
    net.add_sku("A")
    data = net.build()
    ledger = Ledger(data)
    ledger.adjust("A", "S1", stock)  # creates the position, even with no stock
    return data, ledger


def stocked_small_network(seed: int = 0) -> tuple[NetworkData, Ledger]:
    net = make_small_network()
    ledger = Ledger(net)
    rng = np.random.default_rng(seed)
    for sku in range(net.num_skus):
        for loc in range(net.num_locations):
            ledger.receive(sku, loc, int(rng.integers(1, 40)))
    return net, ledger


def run_kernel(dist, mean, var, sellable, reserved, floor, cap, margin, unsold, row):
    """The kernel on the naive twin's arguments (on_hand = sellable + reserved, no safety).

    Runs it with and without the per-position detail; both give the same fences and
    totals, and the totals add up the detail.
    """
    npos, nc = mean.shape
    on_hand = sellable + reserved.sum(axis=1)
    args = (dist, mean, var, on_hand, np.zeros(npos, np.int64), reserved, floor, cap)
    args += (margin, unsold, row)
    nchunks = K.num_chunks(npos)
    out_sellable = np.zeros(npos, np.int64)
    alloc, fence = np.zeros((npos, nc), np.int64), np.zeros((npos, nc), np.int64)
    sales, short = np.zeros((npos, nc)), np.zeros((npos, nc), np.int64)
    totals = np.zeros((nchunks, K.NUM_TOTALS, nc))
    counts = np.zeros((nchunks, K.NUM_COUNTS), np.int64)
    K.allocate(*args, fence, out_sellable, alloc, sales, short, totals, counts)
    np.testing.assert_array_equal(out_sellable, sellable)
    np.testing.assert_array_equal(fence, reserved + alloc)
    chunk_sums = totals.sum(axis=0)
    np.testing.assert_allclose(
        chunk_sums[[K.T_ALLOCATED, K.T_SALES, K.T_DEMAND, K.T_SHORT]],
        [alloc.sum(0), sales.sum(0), mean.sum(0), short.sum(0)],
    )
    np.testing.assert_allclose(chunk_sums[K.T_MARGIN], (sales * margin[row]).sum(0))
    np.testing.assert_allclose(chunk_sums[K.T_UNSOLD], ((alloc - sales) * unsold[row]).sum(0))
    assert counts[:, : K.N_FLOOR_ABOVE_CAP].sum(0).tolist() == [
        sellable.sum(),
        (short > 0).any(axis=1).sum(),
        (reserved > 0).any(axis=1).sum(),
        0,  # no safety stock
        (cap != cap[0]).any(axis=1).sum(),
    ]
    assert (counts[:, K.N_FLOOR_ABOVE_CAP] == -1).all()  # caps = floors + extra
    # Without the detail: the same fences and totals, bit for bit.
    fence2 = np.zeros((npos, nc), np.int64)
    totals2, counts2 = np.zeros_like(totals), np.zeros_like(counts)
    none = np.zeros((0, nc), np.int64)
    K.allocate(*args, fence2, none[:, 0], none, none.astype(float), none, totals2, counts2)
    np.testing.assert_array_equal(fence2, fence)
    np.testing.assert_array_equal(totals2, totals)
    np.testing.assert_array_equal(counts2, counts)
    return alloc, sales, short


# ---------------------------------------------------------------------- scalar functions
@pytest.mark.parametrize("mu,sd", [(0.0, 1.0), (3.7, 2.0), (50.0, 7.5), (1000.0, 300.0)])
def test_sf_normal_matches_scipy(mu: float, sd: float) -> None:
    qs = np.arange(0, int(mu + 12 * sd) + 2)
    ours = np.array([K.sf_normal(int(q), mu, sd) for q in qs])
    ref = stats.norm.sf(qs + 0.5, loc=mu, scale=sd)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-300)
    assert np.all(np.diff(ours) <= 0)


def test_sf_normal_without_variance_is_rounded_mean() -> None:
    # D = 2.4 rounds to 2: P(D > 0) = P(D > 1) = 1, P(D > 2) = 0.
    assert [K.sf_normal(q, 2.4, 0.0) for q in range(4)] == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("lam", [0.3, 3.7, 25.0, 400.0, 20000.0])
def test_sf_poisson_matches_scipy(lam: float) -> None:
    qs = np.unique(np.linspace(0, lam + 15 * math.sqrt(lam) + 10, 400).astype(np.int64))
    ours = np.array([K.sf_poisson(int(q), lam) for q in qs])
    ref = stats.poisson.sf(qs, lam)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-290)
    assert np.all(np.diff(ours) <= 0)
    assert K.sf_poisson(3, 0.0) == 0.0


def test_log_factorial_matches_lgamma() -> None:
    for n in [0, 1, 5, 31, 32, 33, 100, 10**4, 10**9]:
        assert K.log_factorial(n) == pytest.approx(math.lgamma(n + 1), rel=1e-15, abs=1e-15)


def test_compiled_and_python_scalars_agree_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    for _ in range(2000):
        q = int(rng.integers(0, 300))
        mu = float(rng.uniform(0, 200))
        sd = float(rng.uniform(0, 30))
        assert K.sf_normal(q, mu, sd) == K.sf_normal.py_func(q, mu, sd)
        assert K.sf_poisson(q, mu) == K.sf_poisson.py_func(q, mu)


# ---------------------------------------------------------------------- known answers
@pytest.mark.parametrize(
    "mu,var,m,h", [(10.0, 9.0, 3.0, 1.0), (40.0, 100.0, 1.0, 4.0), (5.5, 2.0, 9.0, 1.0)]
)
def test_one_channel_normal_is_the_newsvendor_quantity(mu, var, m, h) -> None:
    data, ledger = one_position(1000, ("online",))
    fc = ChannelForecast.normal(np.array([[mu]]), np.array([[var]]))
    alloc = allocate_channels(data, ledger, fc, margin=m, unsold_cost=h)
    # Demand rounded to whole units: smallest q with P(D <= q + 0.5) >= m / (m + h).
    expected = math.ceil(mu - 0.5 + math.sqrt(var) * stats.norm.ppf(m / (m + h)))
    assert alloc.allocated[0, 0] == expected


@pytest.mark.parametrize("lam,m,h", [(4.0, 3.0, 1.0), (30.0, 1.0, 1.0), (0.7, 5.0, 1.0)])
def test_one_channel_poisson_is_the_newsvendor_quantity(lam, m, h) -> None:
    data, ledger = one_position(1000, ("online",))
    alloc = allocate_channels(
        data, ledger, ChannelForecast.poisson([[lam]]), margin=m, unsold_cost=h, detail=True
    )
    assert alloc.allocated[0, 0] == int(stats.poisson.ppf(m / (m + h), lam))
    # Expected sales E[min(D, q)] = sum_{k<q} P(D > k).
    q = int(alloc.allocated[0, 0])
    assert alloc.expected_sales[0, 0] == pytest.approx(stats.poisson.sf(np.arange(q), lam).sum())


def test_one_channel_short_stock_takes_everything() -> None:
    data, ledger = one_position(7, ("online",))
    alloc = allocate_channels(
        data, ledger, ChannelForecast.poisson([[30.0]]), margin=2.0, unsold_cost=1.0
    )
    assert alloc.allocated.tolist() == [[7]]


@pytest.mark.parametrize("stock", [10, 11, 40, 41, 400])
@pytest.mark.parametrize("dist", ["normal", "poisson"])
def test_two_equal_channels_split_equally(stock: int, dist: str) -> None:
    data, ledger = one_position(stock, ("store", "online"))
    mean = np.array([[30.0, 30.0]])
    fc = (
        ChannelForecast.normal(mean, mean * 2)
        if dist == "normal"
        else ChannelForecast.poisson(mean)
    )
    alloc = allocate_channels(data, ledger, fc, margin=5.0, unsold_cost=1.0)
    a, b = alloc.allocated[0].tolist()
    if stock <= 60:  # scarce: every unit is fenced, split evenly
        assert a + b == stock
        # Ties go to the lower channel index, so an odd unit goes to "store".
        assert (a, b) == ((stock + 1) // 2, stock // 2)
    else:  # ample: each channel gets its own newsvendor quantity
        fractile = 5.0 / 6.0
        if dist == "normal":
            expected = math.ceil(30.0 - 0.5 + math.sqrt(60.0) * stats.norm.ppf(fractile))
        else:
            expected = int(stats.poisson.ppf(fractile, 30.0))
        assert a == b == expected


def test_floor_is_honoured_even_against_margin() -> None:
    data, ledger = one_position(10)
    fc = ChannelForecast.poisson([[0.0, 20.0, 20.0]])  # no demand at all in store
    alloc = allocate_channels(
        data, ledger, fc, margin=[1.0, 5.0, 5.0], floors={"store": 3}, detail=True
    )
    assert alloc.allocated[0].tolist() == [3, 4, 3]
    assert alloc.floor_shortfall.sum() == 0


def test_floors_beyond_stock_are_filled_in_channel_order() -> None:
    data, ledger = one_position(4)
    fc = ChannelForecast.poisson([[1.0, 1.0, 1.0]])
    alloc = allocate_channels(data, ledger, fc, margin=1.0, floors=[3, 3, 0], detail=True)
    assert alloc.allocated[0].tolist() == [3, 1, 0]
    assert alloc.floor_shortfall[0].tolist() == [0, 2, 0]
    assert alloc.num_floor_short == 1


def test_caps_absolute_and_share() -> None:
    data, ledger = one_position(100)
    fc = ChannelForecast.poisson([[50.0, 50.0, 50.0]])
    alloc = allocate_channels(
        data, ledger, fc, margin=[1.0, 2.0, 3.0], caps={"marketplace": 0.25, "online": 10}
    )
    assert alloc.cap[0].tolist() == [STOCK_MAX, 10, 25]
    assert alloc.allocated[0].tolist() == [65, 10, 25]
    assert alloc.cap_set.tolist() == [False, True, True]


def test_expected_margin_and_fill_rate_add_up() -> None:
    net, ledger = stocked_small_network()
    rng = np.random.default_rng(0)
    mean = rng.uniform(0, 10, (ledger.num_positions, 3))
    alloc = allocate_channels(
        net,
        ledger,
        ChannelForecast.normal(mean, mean),
        margin=[4, 3, 2],
        unsold_cost=1.0,
        detail=True,
    )
    np.testing.assert_array_equal(alloc.channel_allocated, alloc.allocated.sum(axis=0))
    assert alloc.total_sellable == alloc.sellable.sum()
    np.testing.assert_allclose(alloc.channel_expected_sales, alloc.expected_sales.sum(axis=0))
    np.testing.assert_allclose(alloc.fill_rate, alloc.expected_sales.sum(0) / mean.sum(0))
    assert alloc.expected_margin == pytest.approx((alloc.expected_sales.sum(0) * [4, 3, 2]).sum())
    unsold = (alloc.allocated - alloc.expected_sales).sum()
    assert alloc.expected_unsold_cost == pytest.approx(unsold)
    assert np.all(alloc.expected_sales <= alloc.allocated + 1e-12)


def test_margin_per_sku() -> None:
    net, ledger = stocked_small_network()
    npos = ledger.num_positions
    mean = np.full((npos, 3), 30.0)
    margin = np.ones((net.num_skus, 3))
    margin[1] = [1.0, 1.0, 9.0]  # SKU-1 sells best on the marketplace
    alloc = allocate_channels(
        net, ledger, ChannelForecast.poisson(mean), margin=margin, unsold_cost=0.5, detail=True
    )
    sku1 = ledger.position_sku == 1
    assert np.all(alloc.allocated[sku1, 2] == np.minimum(alloc.sellable[sku1], 1000))
    assert alloc.channel_margin[2] == pytest.approx(
        (alloc.expected_sales[:, 2] * margin[ledger.position_sku, 2]).sum()
    )
    assert alloc.expected_unsold_cost == pytest.approx(
        0.5 * (alloc.allocated - alloc.expected_sales).sum()
    )


def test_brute_force_optimum_on_tiny_instances() -> None:
    rng = np.random.default_rng(11)
    for _ in range(40):
        stock = int(rng.integers(0, 9))
        data, ledger = one_position(stock, ("store", "online"))
        lam = rng.uniform(0, 6, (1, 2))
        m = rng.uniform(0.5, 5, 2)
        h = rng.uniform(0, 2, 2)
        alloc = allocate_channels(
            data, ledger, ChannelForecast.poisson(lam), margin=m, unsold_cost=h
        )

        def value(q: tuple[int, ...], lam=lam, m=m, h=h) -> float:
            total = 0.0
            for c in range(2):
                sales = stats.poisson.sf(np.arange(q[c]), lam[0, c]).sum()
                total += m[c] * sales - h[c] * (q[c] - sales)
            return total

        best = max(
            value(q) for q in itertools.product(range(stock + 1), repeat=2) if sum(q) <= stock
        )
        assert alloc.objective == pytest.approx(best, abs=1e-9)


# ---------------------------------------------------------------------- kernel vs naive
@st.composite
def kernel_inputs(draw):
    npos = draw(st.integers(1, 6))
    nc = draw(st.integers(1, 4))
    dist = draw(st.sampled_from([K.DIST_NORMAL, K.DIST_POISSON]))
    big = draw(st.booleans())
    means = st.sampled_from([0.0, 0.5, 1.0, 2.5, 3.7, 10.0, 44.4, 150.0])
    mean = np.array(draw(st.lists(means, min_size=npos * nc, max_size=npos * nc))).reshape(npos, nc)
    disp = np.array(
        draw(
            st.lists(
                st.sampled_from([0.0, 0.3, 1.0, 2.0, 5.0]), min_size=npos * nc, max_size=npos * nc
            )
        )
    ).reshape(npos, nc)
    var = mean * disp if dist == K.DIST_NORMAL else mean.copy()
    top = 3000 if big else 40
    sellable = np.array(draw(st.lists(st.integers(0, top), min_size=npos, max_size=npos)))
    reserved = np.array(
        draw(st.lists(st.integers(0, 3), min_size=npos * nc, max_size=npos * nc))
    ).reshape(npos, nc)
    floor = np.array(
        draw(st.lists(st.integers(0, 4), min_size=npos * nc, max_size=npos * nc))
    ).reshape(npos, nc)
    extra = np.array(
        draw(
            st.lists(
                st.sampled_from([0, 1, 7, 60, STOCK_MAX // 2]),
                min_size=npos * nc,
                max_size=npos * nc,
            )
        )
    ).reshape(npos, nc)
    cap = floor + extra
    values = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 7.5])
    margin = np.array(draw(st.lists(values, min_size=nc, max_size=nc))).reshape(1, nc)
    unsold = np.array(draw(st.lists(values, min_size=nc, max_size=nc))).reshape(1, nc)
    row = np.zeros(npos, dtype=np.int64)
    return (
        dist,
        mean,
        var,
        sellable.astype(np.int64),
        reserved.astype(np.int64),
        floor.astype(np.int64),
        cap.astype(np.int64),
        margin,
        unsold,
        row,
    )


@settings(max_examples=150, deadline=None)
@given(kernel_inputs())
def test_kernel_equals_naive_greedy(args) -> None:
    alloc, sales, short = run_kernel(*args)
    n_alloc, n_sales, n_short = naive_allocate(*args)
    np.testing.assert_array_equal(alloc, n_alloc)
    np.testing.assert_array_equal(short, n_short)
    np.testing.assert_allclose(sales, n_sales, rtol=1e-12, atol=0)


@settings(max_examples=100, deadline=None)
@given(kernel_inputs())
def test_fences_respect_stock_floors_and_caps(args) -> None:
    sellable, reserved, floor, cap = args[3], args[4], args[5], args[6]
    alloc, sales, short = run_kernel(*args)
    lo = np.maximum(floor - reserved, 0)
    hi = np.maximum(cap - reserved, lo)
    assert np.all(alloc.sum(axis=1) <= sellable)  # fences never exceed sellable stock
    assert np.all(alloc <= hi)
    enough = lo.sum(axis=1) <= sellable
    assert np.all(alloc[enough] >= lo[enough])  # a floor is always honoured when possible
    assert np.all(short[enough] == 0)
    assert np.all(alloc[~enough].sum(axis=1) == sellable[~enough])
    assert np.all((sales >= 0) & (sales <= alloc + 1e-9))


# ---------------------------------------------------------------------- ledger round trip
@pytest.mark.parametrize("link", ["all", "position"])
def test_to_events_applies_and_available_reflects_the_split(link: str) -> None:
    net, ledger = stocked_small_network(seed=4)
    ledger.reserve("SKU-0", "S1", 2, channel="online")
    ledger.reserve("SKU-1", "DC", 1, channel="store")
    rng = np.random.default_rng(4)
    npos = ledger.num_positions
    mean = rng.uniform(0, 9, (npos, 3))
    fc = ChannelForecast.normal(mean, 2 * mean)
    alloc = allocate_channels(
        net,
        ledger,
        fc,
        margin={"store": 5.0, "online": 4.0, "marketplace": 3.0},
        unsold_cost=1.0,
        floors={"store": 2},
        caps={"marketplace": 0.3},
        service_level=0.9,
        detail=True,
    )
    events = alloc.to_events(first_id=1000, link=link)
    assert len(events) == npos * (1 + 1 + 3)
    assert (events.link.reshape(npos, 5)[:, -1] == (link == "all")).sum() >= npos - 1
    result = ledger.apply(events)
    assert result.ok
    np.testing.assert_array_equal(ledger.fence, alloc.fence)
    np.testing.assert_array_equal(ledger.safety_stock, alloc.safety_stock)
    np.testing.assert_array_equal(ledger.cap[:, 2], alloc.cap[:, 2])
    free = alloc.sellable - alloc.allocated.sum(axis=1)
    room = alloc.cap - ledger.reserved_by_channel
    expected = np.clip(np.minimum(alloc.allocated + free[:, None], room), 0, None)
    np.testing.assert_array_equal(ledger.available_all(), expected)
    for p in range(npos):
        for c, name in enumerate(net.channel_names):
            got = ledger.available(
                int(alloc.position_sku[p]), int(alloc.position_location[p]), name
            )
            assert got == expected[p, c]
    # Retrying the same batch is idempotent.
    again = ledger.apply(events)
    assert again.duplicate.all()


def test_linked_batch_is_all_or_nothing() -> None:
    net, ledger = stocked_small_network()
    mean = np.full((ledger.num_positions, 3), 5.0)
    alloc = allocate_channels(net, ledger, ChannelForecast.poisson(mean), margin=1.0)
    before = ledger.fence.copy()
    events = alloc.to_events(first_id=1)
    # A foreign event reusing one of the ids with other fields makes the group fail.
    from allocator import Events

    ledger.apply(Events.receive(0, 0, 1, id=int(events.id[5])))
    result = ledger.apply(events)
    assert not result.ok
    np.testing.assert_array_equal(ledger.fence, before)


def test_service_level_safety_stock_uses_allocator_safety() -> None:
    net, ledger = stocked_small_network()
    rng = np.random.default_rng(2)
    mean = rng.uniform(0, 5, (ledger.num_positions, 3))
    var = rng.uniform(0, 5, (ledger.num_positions, 3))
    alloc = allocate_channels(
        net,
        ledger,
        ChannelForecast.normal(mean, var),
        margin=1.0,
        service_level=0.95,
        lead_time=2.0,
        detail=True,
    )
    ss = safety_stock(mean.sum(1), np.sqrt(var.sum(1)), lead_time=2.0, service_level=0.95)
    np.testing.assert_array_equal(alloc.safety_stock, np.ceil(np.maximum(ss, 0) - 1e-9))
    on_hand = ledger.on_hand
    np.testing.assert_array_equal(alloc.sellable, np.maximum(on_hand - alloc.safety_stock, 0))
    # Poisson and fill-rate forms.
    pois = allocate_channels(net, ledger, ChannelForecast.poisson(mean), margin=1.0, fill_rate=0.98)
    ss = safety_stock(mean.sum(1), fill_rate=0.98, distribution="poisson")
    np.testing.assert_array_equal(pois.safety_stock, np.ceil(np.maximum(ss, 0) - 1e-9))


def test_without_service_target_the_ledger_safety_stock_stays() -> None:
    data, ledger = one_position(20)
    from allocator import Events

    ledger.apply(Events.set_safety("A", "S1", 5, network=data))
    alloc = allocate_channels(
        data, ledger, ChannelForecast.poisson([[50.0, 50.0, 50.0]]), margin=1.0, detail=True
    )
    assert alloc.sellable.tolist() == [15] and alloc.allocated.sum() == 15
    assert not alloc.safety_set
    assert not (alloc.to_events().kind == 13).any()


def test_from_frame_and_to_frame() -> None:
    import pandas as pd

    net, ledger = stocked_small_network()
    frame = pd.DataFrame(
        {
            "sku": ["SKU-0", "SKU-0", "SKU-3"],
            "location": ["S1", "S1", "DC"],
            "channel": ["store", "online", "marketplace"],
            "mean": [4.0, 2.0, 7.0],
            "var": [4.0, 1.0, 9.0],
        }
    )
    fc = ChannelForecast.from_frame(frame, ledger)
    p0 = ledger.position_index("SKU-0", "S1")
    p3 = ledger.position_index("SKU-3", "DC")
    assert fc.mean[p0].tolist() == [4.0, 2.0, 0.0] and fc.var[p3, 2] == 9.0
    assert fc.mean.sum() == 13.0
    alloc = allocate_channels(net, ledger, fc, margin=1.0, unsold_cost=0.5, detail=True)
    out = alloc.to_frame()
    assert len(out) == ledger.num_positions * 3
    row = out[(out.sku == "SKU-3") & (out.location == "DC") & (out.channel == "marketplace")]
    assert int(row.allocated.iloc[0]) == alloc.allocated[p3, 2] > 0
    assert "ChannelAllocation" in alloc.summary()
    assert isinstance(alloc, ChannelAllocation)
    pois = ChannelForecast.from_frame(frame.drop(columns="var"), ledger, distribution="poisson")
    assert pois.distribution == "poisson" and pois.var[p3, 2] == 7.0


def test_without_detail_the_same_fences_and_totals() -> None:
    net, ledger = stocked_small_network(seed=5)
    ledger.reserve("SKU-2", "S2", 3, channel="marketplace")
    rng = np.random.default_rng(5)
    mean = rng.uniform(0, 12, (ledger.num_positions, 3))
    kwargs = {"margin": [6.0, 5.0, 3.0], "unsold_cost": 1.0, "floors": {"store": 1}}
    full = allocate_channels(
        net, ledger, ChannelForecast.normal(mean, 2 * mean), **kwargs, detail=True
    )
    lean = allocate_channels(net, ledger, ChannelForecast.normal(mean, 2 * mean), **kwargs)
    assert full.detail and not lean.detail
    np.testing.assert_array_equal(lean.fence, full.fence)
    # With a reservation somewhere, allocated is fence - reserved, not the fence itself.
    np.testing.assert_array_equal(lean.allocated, full.allocated)
    assert lean.allocated is not lean.fence
    for name in ("channel_allocated", "channel_expected_sales", "fill_rate", "channel_margin"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name))
    assert (lean.expected_margin, lean.expected_unsold_cost) == (
        full.expected_margin,
        full.expected_unsold_cost,
    )
    assert lean.total_sellable == full.sellable.sum()
    assert lean.num_floor_short == full.num_floor_short
    for name in ("sellable", "expected_sales", "floor_shortfall"):
        with pytest.raises(ValidationError) as err:
            getattr(lean, name)
        assert err.value.code == "detail_not_kept" and err.value.field == name
    assert "expected_sales" not in lean.to_frame().columns
    assert "expected_sales" in full.to_frame().columns


def test_result_keeps_a_snapshot_of_the_ledger() -> None:
    net, ledger = stocked_small_network()
    mean = np.full((ledger.num_positions, 3), 4.0)
    alloc = allocate_channels(net, ledger, ChannelForecast.poisson(mean), margin=1.0)
    # No reservation anywhere: allocated is the fence array itself.
    assert alloc.allocated is alloc.fence
    cap, safety = alloc.cap.copy(), alloc.safety_stock.copy()
    from allocator import Events

    ledger.apply(Events.set_cap("SKU-0", "S1", "online", 7, network=net))
    ledger.apply(Events.set_safety("SKU-0", "S1", 2, network=net))
    np.testing.assert_array_equal(alloc.cap, cap)
    np.testing.assert_array_equal(alloc.safety_stock, safety)
    assert not alloc.cap.flags.writeable and not alloc.fence.flags.writeable
    # Now the ledger's caps and safety stock differ between positions.
    again = allocate_channels(net, ledger, ChannelForecast.poisson(mean), margin=1.0)
    p = ledger.position_index("SKU-0", "S1")
    assert again.cap[p, 1] == 7 and again.allocated[p, 1] == 7
    assert again.safety_stock[p] == 2 and again.safety_stock.sum() == 2
    ledger.apply(Events.set_cap("SKU-0", "S1", "online", 9, network=net))
    assert again.cap[p, 1] == 7


def test_kernel_finds_the_first_floor_above_its_cap() -> None:
    npos, nc = 3 * K.CHUNK + 5, 2
    floor = np.zeros((npos, nc), np.int64)
    cap = np.full((npos, nc), 10, np.int64)
    floor[K.CHUNK + 7, 1] = floor[2 * K.CHUNK, 0] = floor[2 * K.CHUNK + 1, 1] = 11
    nchunks = K.num_chunks(npos)
    counts = np.zeros((nchunks, K.NUM_COUNTS), np.int64)
    none = np.zeros((0, nc), np.int64)
    K.allocate(
        K.DIST_POISSON,
        np.ones((npos, nc)),
        np.ones((npos, nc)),
        np.full(npos, 5),
        np.zeros(npos, np.int64),
        np.zeros((npos, nc), np.int64),
        floor,
        cap,
        np.ones((1, nc)),
        np.zeros((1, nc)),
        np.zeros(npos, np.int64),
        np.zeros((npos, nc), np.int64),
        none[:, 0],
        none,
        none.astype(float),
        none,
        np.zeros((nchunks, K.NUM_TOTALS, nc)),
        counts,
    )
    flat = [(K.CHUNK + 7) * nc + 1, 2 * K.CHUNK * nc]
    assert counts[:, K.N_FLOOR_ABOVE_CAP].tolist() == [-1, flat[0], flat[1], -1]


def test_caps_per_position_and_shares_mixed() -> None:
    net, ledger = stocked_small_network()
    npos = ledger.num_positions
    mean = np.full((npos, 3), 50.0)
    units = np.full((npos, 3), -1, dtype=np.int64)
    units[:, 1] = np.arange(npos)
    alloc = allocate_channels(net, ledger, ChannelForecast.poisson(mean), margin=1.0, caps=units)
    np.testing.assert_array_equal(alloc.cap[:, 1], np.arange(npos))
    np.testing.assert_array_equal(alloc.cap[:, [0, 2]], ledger.cap[:, [0, 2]])
    share = np.full((npos, 3), np.nan)
    share[:, 2] = 0.5
    alloc = allocate_channels(net, ledger, ChannelForecast.poisson(mean), margin=1.0, caps=share)
    np.testing.assert_array_equal(alloc.cap[:, 2], ledger.on_hand // 2)
    assert np.all(alloc.allocated[:, 2] <= ledger.on_hand // 2)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 60.0),
    st.sampled_from([0.05, 0.7, 1.0, 3.0, 11.0]),
    st.sampled_from([(1.0, 1.0), (3.0, 1.0), (9.0, 1.0), (1.0, 20.0), (1.0, 1e-9), (2.0, 0.0)]),
    st.sampled_from([-1e-9, -1e-13, 0.0, 1e-13, 1e-9]),
    st.integers(0, 40),
)
def test_kernel_equals_naive_at_the_newsvendor_boundary(mu, sd, mh, nudge, stock) -> None:
    # Means that put the newsvendor point x = mu - 0.5 + sd z (where a unit's value
    # crosses 0) within a hair of a whole unit: units past x are skipped unevaluated.
    m, h = mh
    z = K.upper_quantile(h / (m + h))
    mu_b = max(0.0, math.floor(mu) + 0.5 - sd * z + nudge)
    mean = np.array([[mu_b, mu, mu_b]])
    var = np.array([[sd * sd, sd, (2 * sd) ** 2]])
    args = (K.DIST_NORMAL, mean, var, np.array([stock]), np.zeros((1, 3), np.int64))
    args += (np.zeros((1, 3), np.int64), np.full((1, 3), STOCK_MAX, np.int64))
    args += (np.array([[m, m, m]]), np.array([[h, h, h]]), np.zeros(1, np.int64))
    alloc, sales, _ = run_kernel(*args)
    n_alloc, n_sales, _ = naive_allocate(*args)
    np.testing.assert_array_equal(alloc, n_alloc)
    np.testing.assert_allclose(sales, n_sales, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------- bad input
def test_bad_forecasts() -> None:
    with pytest.raises(ValidationError) as err:
        ChannelForecast.normal([[1.0, 2.0], [np.nan, 1.0]], [[1.0, 1.0], [1.0, 1.0]])
    assert err.value.field == "forecast.mean" and err.value.row == 1
    assert err.value.code == "not_finite"
    with pytest.raises(ValidationError) as err:
        ChannelForecast.poisson([[1.0, 2.0], [1.0, -1.0]])
    assert err.value.row == 1 and err.value.code == "out_of_range"
    with pytest.raises(ValidationError) as err:
        ChannelForecast.normal([[1.0]], [[-0.5]])
    assert err.value.field == "forecast.var" and err.value.row == 0
    with pytest.raises(ValidationError):
        ChannelForecast.normal([1.0, 2.0], [1.0, 2.0])  # not 2-D
    with pytest.raises(DTypeError):
        ChannelForecast.poisson([["a"]])


def test_bad_arguments_raise_and_change_nothing() -> None:
    net, ledger = stocked_small_network()
    npos = ledger.num_positions
    fc = ChannelForecast.poisson(np.ones((npos, 3)))
    state = (ledger.fence.copy(), ledger.cap.copy(), ledger.safety_stock.copy())

    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, ChannelForecast.poisson(np.ones((npos - 1, 3))), margin=1.0)
    assert err.value.field == "forecast" and err.value.code == "length_mismatch"
    with pytest.raises(UnknownNameError) as err:
        allocate_channels(net, ledger, fc, margin={"store": 1.0, "online": 1.0, "web": 1.0})
    assert err.value.code == "channel_not_found" and err.value.field == "margin"
    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, fc, margin={"store": 1.0})
    assert err.value.code == "missing_field"
    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, fc, margin=[1.0, -2.0, 1.0])
    assert err.value.field == "margin"
    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, fc, margin=1.0, unsold_cost=[1.0, 1.0])
    assert err.value.field == "unsold_cost" and err.value.code == "length_mismatch"
    floors = np.zeros((npos, 3), dtype=np.int64)
    floors[4, 1] = 6
    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, fc, margin=1.0, floors=floors, caps={"online": 5})
    assert (err.value.field, err.value.row, err.value.code) == ("floors", 4, "floor_above_cap")
    with pytest.raises(UnknownNameError):
        allocate_channels(net, ledger, fc, margin=1.0, floors={"shop": 1})
    with pytest.raises(DTypeError):
        allocate_channels(net, ledger, fc, margin=1.0, floors=[0.5, 0.0, 0.0])
    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, fc, margin=1.0, caps={"online": 1.5})
    assert err.value.field == "caps" and err.value.code == "out_of_range"
    with pytest.raises(ValidationError) as err:
        allocate_channels(net, ledger, fc, margin=1.0, floors=[0, -1, 0])
    assert err.value.field == "floors"
    with pytest.raises(ValidationError):
        allocate_channels(net, ledger, fc, margin=1.0, service_level=1.5)
    assert np.array_equal(ledger.fence, state[0]) and np.array_equal(ledger.cap, state[1])
    assert np.array_equal(ledger.safety_stock, state[2])


def test_from_frame_bad_rows() -> None:
    import pandas as pd

    net = make_small_network()
    ledger = Ledger(net)
    ledger.receive("SKU-0", "S1", 5)
    good = {
        "sku": ["SKU-0"],
        "location": ["S1"],
        "channel": ["online"],
        "mean": [1.0],
        "var": [1.0],
    }
    with pytest.raises(ValidationError) as err:
        ChannelForecast.from_frame(pd.DataFrame({**good, "location": ["S2"]}), ledger)
    assert err.value.code == "position_not_found" and err.value.row == 0
    with pytest.raises(UnknownNameError):
        ChannelForecast.from_frame(pd.DataFrame({**good, "channel": ["tv"]}), ledger)
    twice = pd.DataFrame({k: v * 2 for k, v in good.items()})
    with pytest.raises(ValidationError) as err:
        ChannelForecast.from_frame(twice, ledger)
    assert err.value.code == "duplicate_row" and err.value.row == 1
    with pytest.raises(ValidationError) as err:
        ChannelForecast.from_frame(pd.DataFrame({**good, "var": [-1.0]}), ledger)
    assert err.value.field == "var" and err.value.row == 0
    with pytest.raises(ValidationError) as err:
        ChannelForecast.from_frame(pd.DataFrame(good).drop(columns="var"), ledger)
    assert err.value.code == "missing_field"


# ---------------------------------------------------------------------- benchmark smoke
def test_bench_quick_runs() -> None:
    import argparse

    from allocator.bench import channels as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    result = bench.run(parser.parse_args(["--quick"]))
    for key in (
        "positions",
        "channels",
        "positions_per_s",
        "reference_positions_per_s",
        "speedup",
        "compile_s",
        "kernel_s",
        "reference_s",
        "agree",
        "allocate_s",
        "allocate_cpu_s",
        "allocate_first_s",
        "kernel_cpu_s",
        "reference_cpu_s",
        "load_average",
    ):
        assert key in result
    assert result["agree"] is True
    assert result["positions_per_s"] > 0 and result["reference_positions_per_s"] > 0
    assert result["reference_agreement"] == 1.0
    assert result["mean_fenced"] <= result["mean_sellable"]


def test_channels_a_location_does_not_serve_get_nothing() -> None:
    net = Network()
    for ch in CHANNELS:
        net.add_channel(ch)
    net.add_location("S1", kind="store", lat=0.0, lon=0.0)
    net.add_location("DC", kind="warehouse", lat=0.0, lon=0.0, channels=("online",))
    net.add_sku("A")
    data = net.build()
    ledger = Ledger(data)
    ledger.receive("A", "S1", 20)
    ledger.receive("A", "DC", 20)
    fc = ChannelForecast.poisson(np.full((2, 3), 10.0))
    alloc = allocate_channels(
        data, ledger, fc, margin=[1.0, 1.0, 5.0], floors={"store": 2}, caps={"marketplace": 8}
    )
    dc = ledger.position_index("A", "DC")
    assert alloc.allocated[dc].tolist() == [0, 20, 0]
    assert alloc.cap[dc].tolist() == [0, STOCK_MAX, 0]
    assert alloc.allocated[1 - dc, 0] >= 2 and alloc.allocated[1 - dc, 2] == 8
