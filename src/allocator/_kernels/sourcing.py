"""Sourcing kernels: the per-SKU position index, the location grid and greedy sourcing.

Data layout (built by :mod:`allocator.sourcing.indexes`):

* per-SKU position lists in CSR form: the positions of SKU ``s`` are
  ``s_loc[s_ptr[s]:s_ptr[s + 1]]`` (their locations, ascending), and
  ``avail[q, c]`` is the working availability of list entry ``q`` for channel ``c``;
* a uniform latitude/longitude grid over the network's bounding box:
  locations of cell ``(r, k)`` are ``g_loc[g_ptr[r * ncols + k]:g_ptr[r * ncols + k + 1]]``.

The greedy rules are documented in ``docs/sourcing.md``; the pure-Python twin is
``allocator._reference.sourcing``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from allocator._kernels import jit
from allocator._kernels.atp import atp as atp_of
from allocator._kernels.atp import unused_fence
from allocator._kernels.geo import DEG, EARTH_RADIUS_KM, haversine_km

# services
S_SHIP = 0
S_PICKUP = 1
S_SAME_DAY = 2

# unfilled reasons
R_NONE = 0
R_NO_STOCK = 1
R_CAPACITY = 2
R_RADIUS = 3
R_SPLIT_LIMIT = 4
R_LOCATION_UNAVAILABLE = 5

# grid parameter slots
G_LAT0 = 0
G_LON0 = 1
G_CELL = 2
G_NROWS = 3
G_NCOLS = 4


# ---------------------------------------------------------------------------
# bundles: the kernels' data, grouped by what it describes (numba named tuples;
# each is built in one place on the Python side, with fixed dtypes and layouts)
class Stock(NamedTuple):
    """The ledger's per-position arrays that the ATP rule reads, ``P`` positions by ``C``
    channels, in numba's ``A`` layout (see :func:`allocator.sourcing.problem.ledger_views`)."""

    on_hand: np.ndarray  # (P,) int64
    safety: np.ndarray  # (P,) int64
    fence: np.ndarray  # (P, C) int64
    cap: np.ndarray  # (P, C) int64
    reserved: np.ndarray  # (P, C) int64, reserved by channel


class Lists(NamedTuple):
    """Per-SKU position lists (CSR): the entries of SKU ``s`` are ``ptr[s]:ptr[s + 1]``,
    ``loc`` their locations (ascending within a SKU), ``row`` their ledger rows."""

    ptr: np.ndarray  # (S + 1,) int64
    loc: np.ndarray  # (E,) int64
    row: np.ndarray  # (E,) int64


class Avail(NamedTuple):
    """Working availability per list entry, read from the ledger on first use (see
    :func:`avail_at`): ``wav`` is ``(E, 3C + 1)`` int64, ``row`` the ledger row of each
    entry and ``stock`` the ledger's arrays."""

    wav: np.ndarray
    row: np.ndarray
    stock: Stock


class Sites(NamedTuple):
    """The network's locations (``L`` of them) as sourcing reads them."""

    lat: np.ndarray  # (L,) degrees
    lon: np.ndarray  # (L,) degrees
    xyz: np.ndarray  # (L, 3) unit vectors
    ok: np.ndarray  # (L, 2C) bool: col 2c open and serves channel c; 2c + 1 also ships
    pickup: np.ndarray  # (L,) bool: a pick-up point
    same_day_km: np.ndarray  # (L,) same-day radius, 0 = no same-day


class Grid(NamedTuple):
    """The uniform latitude/longitude grid of the locations (CSR by cell, see the module
    docstring) and the largest same-day radius of an open location."""

    params: np.ndarray  # (5,) float64: the G_* slots
    ptr: np.ndarray  # (cells + 1,) int64
    loc: np.ndarray  # (L,) int64
    same_day_max: float


class Tariff(NamedTuple):
    """The cost model as the kernels price it: a package from location ``l`` carrying
    ``u`` units costs ``mult[l] * (per_package + per_unit * u)`` plus shipping, which is
    ``zone_cost[zone[l], zone_o]`` per unit when both zones are set (``zone_cost`` is
    empty when zones are unused), else ``per_km`` per unit and great-circle km."""

    per_package: float
    per_unit: float
    per_km: float
    mult: np.ndarray  # (L,) float64
    zone: np.ndarray  # (L,) int64, -1 = none
    zone_cost: np.ndarray  # (Z, Z) float64


class OrderData(NamedTuple):
    """The orders of one call: lines of order ``o`` are ``ptr[o]:ptr[o + 1]``; ``sku`` is
    each line's SKU (its index into the call's :class:`Lists`); ``lat``, ``lon`` and
    ``zone`` are each order's destination (the pick-up store for pick-up orders)."""

    ptr: np.ndarray  # (N + 1,) int64
    sku: np.ndarray  # (lines,) int64
    qty: np.ndarray  # (lines,) int64
    channel: np.ndarray  # (N,) int64
    service: np.ndarray  # (N,) int64, S_*
    lat: np.ndarray  # (N,) float64
    lon: np.ndarray  # (N,) float64
    pickup: np.ndarray  # (N,) int64, -1 = none
    zone: np.ndarray  # (N,) int64, -1 = none


class Dest(NamedTuple):
    """One order's destination: degrees, unit vector, zone, and the tag under which its
    distances are cached in :attr:`Scratch.km_val`."""

    lat: float
    lon: float
    x: float
    y: float
    z: float
    zone: int
    tag: int


class Scratch(NamedTuple):
    """Working buffers of one thread (``L`` locations, orders of up to ``M`` lines).

    ``io[0]`` counts the rows written, ``io[1]`` is the stamp counter: ``stamp`` marks
    the locations of the current candidate set, ``km_tag`` the current order's cached
    distances. ``cand_*`` is the candidate table (``cand_pos[k, j]``: line ``j``'s list
    entry at candidate ``k``, -1 if absent), ``rem`` the remaining units per line, ``pq``
    and ``qsel`` list entries per line, ``alt`` the runner-up ``(location, cost)``.
    """

    io: np.ndarray  # (2,) int64
    stamp: np.ndarray  # (L,) int64
    cslot: np.ndarray  # (L,) int64: a stamped location's row in the candidate table
    km_tag: np.ndarray  # (L,) int64
    km_val: np.ndarray  # (L,) float64
    cand_loc: np.ndarray  # (L,) int64
    cand_pos: np.ndarray  # (L, M) int64
    cand_km: np.ndarray  # (L,) float64
    cand_spu: np.ndarray  # (L,) float64: shipping cost per unit
    cand_ub: np.ndarray  # (L,) int64: upper bound on units
    rem: np.ndarray  # (M,) int64
    pq: np.ndarray  # (M,) int64
    qsel: np.ndarray  # (M,) int64
    alt: np.ndarray  # (2,) float64


class Rows(NamedTuple):
    """Allocation rows written by the greedy kernel (``Scratch.io[0]`` of them)."""

    order: np.ndarray  # int64
    line: np.ndarray  # int64, global line index
    loc: np.ndarray  # int64
    qty: np.ndarray  # int64
    transfer: np.ndarray  # bool: moves to the pick-up store first


class Outcome(NamedTuple):
    """Per-line and per-order results of the greedy kernel."""

    line_unfilled: np.ndarray  # (lines,) int64
    line_reason: np.ndarray  # (lines,) int8, R_*
    alt_loc: np.ndarray  # (N,) int64: the runner-up whole-order location, -1 = none
    alt_cost: np.ndarray  # (N,) float64: its cost, NaN = none


class Table(NamedTuple):
    """Every order's candidates (CSR, see :class:`allocator.sourcing.problem.Candidates`);
    ``counts`` = [candidates, line entries]."""

    counts: np.ndarray
    ptr: np.ndarray
    location: np.ndarray
    km: np.ndarray
    spu: np.ndarray
    transfer: np.ndarray
    line_ptr: np.ndarray
    entry: np.ndarray


class RowCosts(NamedTuple):
    """Cost parts per allocation row."""

    km: np.ndarray
    unit: np.ndarray
    ship: np.ndarray


class OrderCosts(NamedTuple):
    """Cost parts per order (zeroed by the caller; see :func:`price`)."""

    packages: np.ndarray  # int64
    units: np.ndarray  # int64
    km: np.ndarray
    package_cost: np.ndarray
    unit_cost: np.ndarray
    shipping_cost: np.ndarray
    split_cost: np.ndarray
    unfilled_units: np.ndarray  # int64
    unfilled_cost: np.ndarray
    cost: np.ndarray


# ---------------------------------------------------------------------------
# indexes
@jit
def build_sku_index(
    pos_sku: np.ndarray,
    pos_loc: np.ndarray,
    num_skus: int,
    num_locations: int,
    s_ptr: np.ndarray,
    s_row: np.ndarray,
    s_loc: np.ndarray,
) -> None:
    """Counting sort of positions by (sku, location) into CSR form.

    ``s_ptr`` has ``num_skus + 1`` entries; ``s_row`` holds ledger position rows and
    ``s_loc`` their locations, ascending within each SKU. O(positions + skus + locations).
    """
    n = pos_sku.shape[0]
    # pass 1: stable counting sort by location
    lcount = np.zeros(num_locations + 1, dtype=np.int64)
    for i in range(n):
        lcount[pos_loc[i] + 1] += 1
    for loc in range(num_locations):
        lcount[loc + 1] += lcount[loc]
    by_loc = np.empty(n, dtype=np.int64)
    for i in range(n):
        loc = pos_loc[i]
        by_loc[lcount[loc]] = i
        lcount[loc] += 1
    # pass 2: stable counting sort by sku
    for s in range(num_skus + 1):
        s_ptr[s] = 0
    for i in range(n):
        s_ptr[pos_sku[i] + 1] += 1
    for s in range(num_skus):
        s_ptr[s + 1] += s_ptr[s]
    fill = s_ptr[:-1].copy()
    for t in range(n):
        i = by_loc[t]
        s = pos_sku[i]
        s_row[fill[s]] = i
        s_loc[fill[s]] = pos_loc[i]
        fill[s] += 1


@jit
def subset_index(
    skus: np.ndarray,
    s_ptr: np.ndarray,
    s_row: np.ndarray,
    s_loc: np.ndarray,
    out_ptr: np.ndarray,
    out_row: np.ndarray,
    out_loc: np.ndarray,
) -> None:
    """The CSR lists of ``skus`` only (local SKU ``i`` is ``skus[i]``)."""
    k = 0
    out_ptr[0] = 0
    for i in range(skus.shape[0]):
        s = skus[i]
        for q in range(s_ptr[s], s_ptr[s + 1]):
            out_row[k] = s_row[q]
            out_loc[k] = s_loc[q]
            k += 1
        out_ptr[i + 1] = k


@jit
def build_grid(
    lat: np.ndarray, lon: np.ndarray, params: np.ndarray, g_ptr: np.ndarray, g_loc: np.ndarray
) -> None:
    """Bucket locations into the grid described by ``params`` (CSR by cell)."""
    n = lat.shape[0]
    ncols = int(params[G_NCOLS])
    ncells = g_ptr.shape[0] - 1
    cell_of = np.empty(n, dtype=np.int64)
    for i in range(ncells + 1):
        g_ptr[i] = 0
    for i in range(n):
        c = grid_row(lat[i], params) * ncols + grid_col(lon[i], params)
        cell_of[i] = c
        g_ptr[c + 1] += 1
    for c in range(ncells):
        g_ptr[c + 1] += g_ptr[c]
    fill = g_ptr[:-1].copy()
    for i in range(n):
        c = cell_of[i]
        g_loc[fill[c]] = i
        fill[c] += 1


@jit
def grid_row(lat: float, params: np.ndarray) -> int:
    r = math.floor((lat - params[G_LAT0]) / params[G_CELL])
    nr = int(params[G_NROWS])
    return 0 if r < 0 else (nr - 1 if r >= nr else r)


@jit
def grid_col(lon: float, params: np.ndarray) -> int:
    k = math.floor((lon - params[G_LON0]) / params[G_CELL])
    nc = int(params[G_NCOLS])
    return 0 if k < 0 else (nc - 1 if k >= nc else k)


@jit
def grid_box(lat: float, lon: float, radius_km: float, params: np.ndarray) -> tuple:
    """Cell rows ``[r0, r1]`` and columns ``[k0, k1]`` holding every location within
    ``radius_km`` of the point (conservative; all columns near a pole or the antimeridian)."""
    ang = radius_km / EARTH_RADIUS_KM
    dlat = ang / DEG + 1e-9
    r0 = grid_row(lat - dlat, params)
    r1 = grid_row(lat + dlat, params)
    k0 = 0
    k1 = int(params[G_NCOLS]) - 1
    coslat = math.cos(lat * DEG)
    if ang < math.pi / 2 and math.sin(ang) < coslat:
        dlon = math.asin(math.sin(ang) / coslat) / DEG + 1e-9
        if lon - dlon >= -180.0 and lon + dlon <= 180.0:
            k0 = grid_col(lon - dlon, params)
            k1 = grid_col(lon + dlon, params)
    return r0, r1, k0, k1


@jit
def find_location(s_loc: np.ndarray, lo: int, hi: int, loc: int) -> int:
    """Index ``q`` in ``[lo, hi)`` with ``s_loc[q] == loc``, or -1 (binary search)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = s_loc[mid]
        if v < loc:
            lo = mid + 1
        elif v > loc:
            hi = mid
        else:
            return mid
    return -1


@jit
def stable_order(key: np.ndarray, out: np.ndarray) -> None:
    """``out`` = the indices of ``key`` in ascending key order, ties in index order
    (a bottom-up merge sort: ``np.argsort(key, kind="stable")``)."""
    n = key.shape[0]
    for i in range(n):
        out[i] = i
    buf = np.empty(n, dtype=np.int64)
    width = 1
    src = out
    dst = buf
    in_buf = False
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if key[src[j]] < key[src[i]]:
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        in_buf = not in_buf
        width *= 2
    if in_buf:
        out[:] = buf


@jit
def orders_fit(
    sku: np.ndarray,
    channel: np.ndarray,
    service: np.ndarray,
    pickup: np.ndarray,
    num_skus: int,
    num_channels: int,
    loc_pickup: np.ndarray,
) -> bool:
    """True when every SKU, channel and pick-up location lies inside the network and
    every pick-up order names a pick-up point."""
    for i in range(sku.shape[0]):
        if sku[i] >= num_skus:
            return False
    nloc = loc_pickup.shape[0]
    for o in range(channel.shape[0]):
        if channel[o] >= num_channels or pickup[o] >= nloc:
            return False
        if service[o] == S_PICKUP and (pickup[o] < 0 or not loc_pickup[pickup[o]]):
            return False
    return True


@jit
def prepare_orders(
    o_ptr: np.ndarray,
    sku: np.ndarray,
    priority: np.ndarray,
    service: np.ndarray,
    pickup: np.ndarray,
    o_lat: np.ndarray,
    o_lon: np.ndarray,
    o_zone: np.ndarray,
    loc_lat: np.ndarray,
    loc_lon: np.ndarray,
    loc_zone: np.ndarray,
    s_ptr: np.ndarray,
    seq: np.ndarray,
    line_sku: np.ndarray,
    skus: np.ndarray,
    dest_lat: np.ndarray,
    dest_lon: np.ndarray,
    dest_zone: np.ndarray,
    out: np.ndarray,
) -> None:
    """Per-call order data: ``seq`` (priority descending, then arrival), the distinct
    SKUs ``skus[:out[0]]`` ascending with each line's index into them (``line_sku``),
    destinations (the pick-up store for pick-up orders), ``out[1]`` the number of
    positions of those SKUs and ``out[2]`` the most lines of an order."""
    n = o_ptr.shape[0] - 1
    same = True
    for o in range(1, n):
        if priority[o] != priority[0]:
            same = False
            break
    if same:
        for o in range(n):
            seq[o] = o
    else:
        neg = np.empty(n, dtype=np.int64)
        for o in range(n):
            neg[o] = -priority[o]
        stable_order(neg, seq)
    m = sku.shape[0]
    idx = np.empty(m, dtype=np.int64)
    stable_order(sku, idx)
    k = -1
    prev = -1
    for t in range(m):
        i = idx[t]
        s = sku[i]
        if k < 0 or s != prev:
            k += 1
            skus[k] = s
            prev = s
        line_sku[i] = k
    total = 0
    for i in range(k + 1):
        total += s_ptr[skus[i] + 1] - s_ptr[skus[i]]
    most = 0
    for o in range(n):
        if o_ptr[o + 1] - o_ptr[o] > most:
            most = o_ptr[o + 1] - o_ptr[o]
        if service[o] == S_PICKUP:
            p = pickup[o]
            dest_lat[o] = loc_lat[p]
            dest_lon[o] = loc_lon[p]
            dest_zone[o] = loc_zone[p]
        else:
            dest_lat[o] = o_lat[o]
            dest_lon[o] = o_lon[o]
            dest_zone[o] = o_zone[o]
    out[0] = k + 1
    out[1] = total
    out[2] = most


# ---------------------------------------------------------------------------
# candidate generation
@jit
def gather_from_skus(
    b: int,
    nl: int,
    exclude: int,
    tag: int,
    l_sku: np.ndarray,
    lists: Lists,
    ok: np.ndarray,
    sc: Scratch,
) -> int:
    """Candidates of one order from the per-SKU lists of its lines.

    ``ok[l]`` says whether location ``l`` may serve the order; ``exclude`` is one more
    location to leave out (the pick-up store) or -1. ``cand_pos[k, j]`` is the list
    entry of line ``j`` at candidate ``k`` (-1 if the location does not hold the SKU).
    Returns the number of candidates.
    """
    s_ptr, s_loc = lists.ptr, lists.loc
    stamp, cslot, cand_loc = sc.stamp, sc.cslot, sc.cand_loc
    cand_pos = sc.cand_pos
    nc = 0
    for j in range(nl):
        s = l_sku[b + j]
        for q in range(s_ptr[s], s_ptr[s + 1]):
            loc = s_loc[q]
            if not ok[loc] or loc == exclude:
                continue
            if stamp[loc] != tag:
                stamp[loc] = tag
                cslot[loc] = nc
                cand_loc[nc] = loc
                for jj in range(nl):
                    cand_pos[nc, jj] = -1
                nc += 1
            cand_pos[cslot[loc], j] = q
    return nc


@jit
def gather_same_day(
    b: int,
    nl: int,
    lat: float,
    lon: float,
    l_sku: np.ndarray,
    lists: Lists,
    ok: np.ndarray,
    sites: Sites,
    grid: Grid,
    sc: Scratch,
) -> int:
    """Same-day candidates: locations within their own radius of the destination,
    found through the grid, holding at least one of the order's SKUs."""
    s_ptr, s_loc = lists.ptr, lists.loc
    loc_lat, loc_lon, loc_sd = sites.lat, sites.lon, sites.same_day_km
    sd_max, params, g_ptr = grid.same_day_max, grid.params, grid.ptr
    g_loc = grid.loc
    cand_loc, cand_pos, cand_km = sc.cand_loc, sc.cand_pos, sc.cand_km
    nc = 0
    if sd_max <= 0.0:
        return 0
    r0, r1, k0, k1 = grid_box(lat, lon, sd_max, params)
    ncols = int(params[G_NCOLS])
    for r in range(r0, r1 + 1):
        for k in range(k0, k1 + 1):
            cell = r * ncols + k
            for t in range(g_ptr[cell], g_ptr[cell + 1]):
                loc = g_loc[t]
                if not ok[loc] or loc_sd[loc] <= 0.0:
                    continue
                d = haversine_km(loc_lat[loc], loc_lon[loc], lat, lon)
                if d > loc_sd[loc]:
                    continue
                found = False
                for j in range(nl):
                    s = l_sku[b + j]
                    q = find_location(s_loc, s_ptr[s], s_ptr[s + 1], loc)
                    cand_pos[nc, j] = q
                    if q >= 0:
                        found = True
                if found:
                    cand_loc[nc] = loc
                    cand_km[nc] = d
                    nc += 1
    return nc


# ---------------------------------------------------------------------------
# greedy
#
# Availability is read lazily and kept per list entry ``q`` in ``av.wav[q]`` (width
# ``3C + 1`` for ``C`` channels): ``wav[q, c]`` is the working available(c), -1 until
# the entry is first read from the ledger's per-position arrays (row ``av.row[q]``);
# ``wav[q, C]`` is ``free = on_hand - reserved - safety``, ``wav[q, C + 1 + c]`` the
# unused fence of channel ``c`` and ``wav[q, 2C + 1 + c]`` its cap room. Taking units
# for one channel updates that state as the ledger would on reservation and
# recomputes available() of every channel, so later orders of ANY channel see what
# earlier ones consumed. An order touches the ledger only at the positions its
# search actually looks at, not at every holder of its SKUs.
@jit
def refresh_avail(q: int, wav: np.ndarray, nch: int) -> None:
    """``wav[q, c]`` for every channel from the entry's (free, unused fence, cap room)
    through the ATP formula (:func:`allocator._kernels.atp.atp`)."""
    free = wav[q, nch]
    fsum = 0
    for cc in range(nch):
        fsum += wav[q, nch + 1 + cc]
    for cc in range(nch):
        wav[q, cc] = atp_of(free, fsum, wav[q, nch + 1 + cc], wav[q, 2 * nch + 1 + cc])


@jit
def load_entry(q: int, av: Avail) -> None:
    """Read list entry ``q``'s state from ledger row ``av.row[q]``."""
    wav, rows = av.wav, av.row
    on_hand, safety, fence = av.stock.on_hand, av.stock.safety, av.stock.fence
    lcap, reserved = av.stock.cap, av.stock.reserved
    nch = fence.shape[1]
    row = rows[q]
    total = 0
    for cc in range(nch):
        r = reserved[row, cc]
        total += r
        wav[q, nch + 1 + cc] = unused_fence(fence[row, cc], r)
        wav[q, 2 * nch + 1 + cc] = lcap[row, cc] - r
    wav[q, nch] = on_hand[row] - total - safety[row]
    refresh_avail(q, wav, nch)


@jit
def consume(q: int, c: int, t: int, wav: np.ndarray, nch: int) -> None:
    """Take ``t`` units of list entry ``q`` for channel ``c`` (the ledger's sequential
    rule): free -= t, unused_fence[c] -= min(t, unused_fence[c]), cap_room[c] -= t."""
    wav[q, nch] -= t
    f = wav[q, nch + 1 + c]
    wav[q, nch + 1 + c] = f - t if f > t else 0
    wav[q, 2 * nch + 1 + c] -= t
    refresh_avail(q, wav, nch)


@jit
def avail_at(q: int, c: int, av: Avail) -> int:
    """Working availability of list entry ``q`` for channel ``c`` (read on first use)."""
    v = av.wav[q, c]
    if v < 0:
        load_entry(q, av)
        v = av.wav[q, c]
    return v


@jit
def unit_vector(lat: float, lon: float) -> tuple:
    """The point at ``(lat, lon)`` degrees as a unit vector ``(x, y, z)``."""
    p1 = lat * DEG
    l1 = lon * DEG
    return math.cos(p1) * math.cos(l1), math.cos(p1) * math.sin(l1), math.sin(p1)


@jit
def destination(lat: float, lon: float, zone: int, tag: int) -> Dest:
    """The :class:`Dest` of a point in degrees."""
    x, y, z = unit_vector(lat, lon)
    return Dest(lat, lon, x, y, z, zone, tag)


@jit
def km_lower(loc: int, dest: Dest, xyz: np.ndarray) -> float:
    """A lower bound on :func:`haversine_km` from location ``loc`` to the destination's
    unit vector: ``R · chord ≤ 2R asin(chord / 2)``, less a margin for rounding."""
    dx = xyz[loc, 0] - dest.x
    dy = xyz[loc, 1] - dest.y
    dz = xyz[loc, 2] - dest.z
    return EARTH_RADIUS_KM * math.sqrt(dx * dx + dy * dy + dz * dz) * (1.0 - 1e-9) - 1e-6


@jit
def ship_cost_unit(
    loc: int,
    exact: bool,
    dest: Dest,
    tariff: Tariff,
    sites: Sites,
    km_tag: np.ndarray,
    km_val: np.ndarray,
) -> float:
    """Shipping cost per unit from ``loc`` to the order's destination: the zone matrix
    entry when both zones are set, else ``per_km`` times the haversine km (``exact``,
    cached per order under ``dest.tag``) or times :func:`km_lower` (a lower bound)."""
    zl = tariff.zone[loc]
    zo = dest.zone
    if tariff.zone_cost.shape[0] > 0 and zo >= 0 and zl >= 0:
        return tariff.zone_cost[zl, zo]
    if not exact:
        return tariff.per_km * km_lower(loc, dest, sites.xyz)
    if km_tag[loc] != dest.tag:
        km_tag[loc] = dest.tag
        km_val[loc] = haversine_km(sites.lat[loc], sites.lon[loc], dest.lat, dest.lon)
    return tariff.per_km * km_val[loc]


@jit
def take_from(
    loc: int,
    qsel: np.ndarray,
    nl: int,
    b: int,
    c: int,
    o: int,
    transfer: bool,
    rem: np.ndarray,
    cap_rem: np.ndarray,
    av: Avail,
    rows: Rows,
    io: np.ndarray,
) -> int:
    """Take all ``loc`` can give of the remaining lines ``rem`` (line order, within its
    pick capacity); ``qsel[j]`` is line ``j``'s list entry at ``loc`` or -1. Rows go to
    ``rows`` from ``io[0]`` on. Returns units."""
    r_order, r_line, r_loc = rows.order, rows.line, rows.loc
    r_qty, r_transfer = rows.qty, rows.transfer
    budget = cap_rem[loc]
    took = 0
    for j in range(nl):
        rj = rem[j]
        q = qsel[j]
        if rj <= 0 or q < 0:
            continue
        t = avail_at(q, c, av)
        if t > rj:
            t = rj
        if budget >= 0 and t > budget - took:
            t = budget - took
        if t <= 0:
            continue
        consume(q, c, t, av.wav, av.stock.fence.shape[1])
        rem[j] -= t
        took += t
        n = io[0]
        r_order[n] = o
        r_line[n] = b + j
        r_loc[n] = loc
        r_qty[n] = t
        r_transfer[n] = transfer
        io[0] = n + 1
    if budget >= 0:
        cap_rem[loc] = budget - took
    return took


@jit
def supply(
    k: int,
    nl: int,
    c: int,
    rem: np.ndarray,
    cand_loc: np.ndarray,
    cand_pos: np.ndarray,
    cap_rem: np.ndarray,
    av: Avail,
) -> int:
    """Units candidate ``k`` can give of the remaining lines ``rem`` for channel ``c``,
    within its pick capacity."""
    s = 0
    for j in range(nl):
        rj = rem[j]
        if rj > 0:
            q = cand_pos[k, j]
            if q >= 0:
                a = avail_at(q, c, av)
                s += a if a < rj else rj
    cr = cap_rem[cand_loc[k]]
    if cr >= 0 and s > cr:
        s = cr
    return s


@jit
def cover(
    nc: int,
    nl: int,
    b: int,
    c: int,
    o: int,
    used: int,
    max_locs: int,
    transfer: bool,
    total: int,
    cap_rem: np.ndarray,
    av: Avail,
    tariff: Tariff,
    sc: Scratch,
    rows: Rows,
) -> tuple:
    """Cover the remaining lines from an explicit candidate table, one location at a time.

    Each step takes the cheapest candidate that can supply everything remaining, or
    else the one that supplies the most units (ties: lower cost, then lower location
    index), and takes all it can. Stops when filled, when no candidate supplies
    anything, or after ``max_locs`` locations. ``sc.alt`` receives the second-cheapest
    whole-order candidate of the first step. Returns ``(used, remaining units)``.
    Used for same-day orders, whose few candidates come from the grid.
    """
    cand_loc, cand_pos, cand_spu = sc.cand_loc, sc.cand_pos, sc.cand_spu
    rem, qsel, alt = sc.rem, sc.qsel, sc.alt
    io = sc.io
    loc_mult, c_pkg, c_unit = tariff.mult, tariff.per_package, tariff.per_unit
    first = True
    while total > 0 and used < max_locs:
        fb = -1
        fb_cost = np.inf
        fb_loc = -1
        f2_cost = np.inf
        f2_loc = -1
        nb = -1
        nb_s = 0
        nb_cost = np.inf
        nb_loc = -1
        for k in range(nc):
            loc = cand_loc[k]
            s = supply(k, nl, c, rem, cand_loc, cand_pos, cap_rem, av)
            if s <= 0:
                continue
            cost = loc_mult[loc] * (c_pkg + c_unit * s) + cand_spu[k] * s
            if s == total:
                if cost < fb_cost or (cost == fb_cost and loc < fb_loc):
                    f2_cost = fb_cost
                    f2_loc = fb_loc
                    fb, fb_cost, fb_loc = k, cost, loc
                elif cost < f2_cost or (cost == f2_cost and loc < f2_loc):
                    f2_cost = cost
                    f2_loc = loc
            elif s > nb_s or (s == nb_s and (cost < nb_cost or (cost == nb_cost and loc < nb_loc))):
                nb, nb_s, nb_cost, nb_loc = k, s, cost, loc
        if first:
            alt[0] = f2_loc
            alt[1] = f2_cost
            first = False
        best = fb if fb >= 0 else nb
        if best < 0:
            break
        for j in range(nl):
            qsel[j] = cand_pos[best, j]
        took = take_from(cand_loc[best], qsel, nl, b, c, o, transfer, rem, cap_rem, av, rows, io)
        total -= took
        used += 1
    return used, total


@jit
def cover_lists(
    nl: int,
    b: int,
    c: int,
    o: int,
    used: int,
    max_locs: int,
    transfer: bool,
    exclude: int,
    total: int,
    ok: np.ndarray,
    dest: Dest,
    l_sku: np.ndarray,
    lists: Lists,
    cap_rem: np.ndarray,
    av: Avail,
    tariff: Tariff,
    sites: Sites,
    sc: Scratch,
    rows: Rows,
) -> tuple:
    """:func:`cover` over the candidates implied by the per-SKU lists: every location
    ``l`` with ``ok[l]``, ``l != exclude``, holding a SKU of a remaining line.

    The same choice as :func:`cover`, found with far fewer reads:

    * a whole-order candidate holds every remaining line, so it is searched for along
      the shortest remaining list only (membership in the others by binary search),
      and skipped before any availability is read when a lower bound on its cost
      (:func:`km_lower` for the distance) exceeds the second-best (first step: for
      ``alt``) or best whole-order cost found so far;
    * otherwise the candidate supplying the most units is searched for over the union
      of the remaining lists, best upper bound (units of the lines it holds, capped by
      its pick capacity) first; a candidate whose bound is below the best supply, or
      equal to it with a cost bound above the best cost, is never read.

    Costs of the candidates that are compared are computed exactly as in
    :func:`cover`, and the comparisons are strict total orders (cost, then location),
    so the visiting order does not change the result.
    """
    s_ptr, s_loc = lists.ptr, lists.loc
    stamp, cslot, cand_loc = sc.stamp, sc.cslot, sc.cand_loc
    cand_pos, cand_ub = sc.cand_pos, sc.cand_ub
    rem, qsel, alt = sc.rem, sc.qsel, sc.alt
    io = sc.io
    km_tag, km_val = sc.km_tag, sc.km_val
    loc_mult, c_pkg, c_unit = tariff.mult, tariff.per_package, tariff.per_unit
    first = True
    while total > 0 and used < max_locs:
        # -- whole-order candidates, along the shortest remaining list
        jd = -1
        best_len = 0
        for j in range(nl):
            if rem[j] > 0:
                s = l_sku[b + j]
                ln = s_ptr[s + 1] - s_ptr[s]
                if jd < 0 or ln < best_len:
                    jd = j
                    best_len = ln
        fb_cost = np.inf
        fb_loc = -1
        f2_cost = np.inf
        f2_loc = -1
        base = c_pkg + c_unit * total
        sd = l_sku[b + jd]
        for qd in range(s_ptr[sd], s_ptr[sd + 1]):
            loc = s_loc[qd]
            if not ok[loc] or loc == exclude:
                continue
            cr = cap_rem[loc]
            if cr >= 0 and cr < total:
                continue
            thr = f2_cost if first else fb_cost
            if thr < np.inf:
                spu = ship_cost_unit(loc, False, dest, tariff, sites, km_tag, km_val)
                if loc_mult[loc] * base + spu * total > thr:
                    continue
            full = True
            for j in range(nl):
                rj = rem[j]
                if rj <= 0:
                    continue
                if j == jd:
                    q = qd
                else:
                    s = l_sku[b + j]
                    q = find_location(s_loc, s_ptr[s], s_ptr[s + 1], loc)
                    if q < 0:
                        full = False
                        break
                if avail_at(q, c, av) < rj:
                    full = False
                    break
            if not full:
                continue
            spu = ship_cost_unit(loc, True, dest, tariff, sites, km_tag, km_val)
            cost = loc_mult[loc] * (c_pkg + c_unit * total) + spu * total
            if cost < fb_cost or (cost == fb_cost and loc < fb_loc):
                f2_cost = fb_cost
                f2_loc = fb_loc
                fb_cost, fb_loc = cost, loc
            elif cost < f2_cost or (cost == f2_cost and loc < f2_loc):
                f2_cost = cost
                f2_loc = loc
        if first:
            alt[0] = f2_loc
            alt[1] = f2_cost
            first = False
        if fb_loc >= 0:
            best_loc = fb_loc
            for j in range(nl):
                qsel[j] = -1
                if rem[j] > 0:
                    s = l_sku[b + j]
                    qsel[j] = find_location(s_loc, s_ptr[s], s_ptr[s + 1], best_loc)
        else:
            # -- the candidate supplying the most units, over the union of the lists
            io[1] += 1
            utag = io[1]
            nc = 0
            for j in range(nl):
                rj = rem[j]
                if rj <= 0:
                    continue
                s = l_sku[b + j]
                for q in range(s_ptr[s], s_ptr[s + 1]):
                    loc = s_loc[q]
                    if not ok[loc] or loc == exclude:
                        continue
                    if stamp[loc] != utag:
                        stamp[loc] = utag
                        cslot[loc] = nc
                        cand_loc[nc] = loc
                        cand_ub[nc] = 0
                        for jj in range(nl):
                            cand_pos[nc, jj] = -1
                        nc += 1
                    k = cslot[loc]
                    cand_pos[k, j] = q
                    cand_ub[k] += rj
            max_ub = 0
            for k in range(nc):
                cr = cap_rem[cand_loc[k]]
                if cr >= 0 and cand_ub[k] > cr:
                    cand_ub[k] = cr
                if cand_ub[k] > max_ub:
                    max_ub = cand_ub[k]
            nb = -1
            nb_s = 0
            nb_cost = np.inf
            nb_known = True
            nb_loc = -1
            for sweep in range(2):
                for k in range(nc):
                    u = cand_ub[k]
                    if (u == max_ub) != (sweep == 0):
                        continue
                    if u <= 0 or u < nb_s:
                        continue
                    loc = cand_loc[k]
                    if u == nb_s:
                        # can at best tie on supply: compare a cost bound first
                        if not nb_known:
                            spu = ship_cost_unit(nb_loc, True, dest, tariff, sites, km_tag, km_val)
                            nb_cost = loc_mult[nb_loc] * (c_pkg + c_unit * nb_s) + spu * nb_s
                            nb_known = True
                        spu = ship_cost_unit(loc, False, dest, tariff, sites, km_tag, km_val)
                        if loc_mult[loc] * (c_pkg + c_unit * u) + spu * u > nb_cost:
                            continue
                    s = supply(k, nl, c, rem, cand_loc, cand_pos, cap_rem, av)
                    if s <= 0 or s < nb_s:
                        continue
                    if s > nb_s:
                        nb, nb_s, nb_loc = k, s, loc
                        nb_known = False
                        continue
                    if not nb_known:
                        spu = ship_cost_unit(nb_loc, True, dest, tariff, sites, km_tag, km_val)
                        nb_cost = loc_mult[nb_loc] * (c_pkg + c_unit * nb_s) + spu * nb_s
                        nb_known = True
                    spu = ship_cost_unit(loc, True, dest, tariff, sites, km_tag, km_val)
                    cost = loc_mult[loc] * (c_pkg + c_unit * s) + spu * s
                    if cost < nb_cost or (cost == nb_cost and loc < nb_loc):
                        nb, nb_cost, nb_loc = k, cost, loc
            if nb < 0:
                break
            best_loc = nb_loc
            for j in range(nl):
                qsel[j] = cand_pos[nb, j]
        took = take_from(best_loc, qsel, nl, b, c, o, transfer, rem, cap_rem, av, rows, io)
        total -= took
        used += 1
    return used, total


@jit
def greedy(
    seq: np.ndarray,
    start: int,
    orders: OrderData,
    lists: Lists,
    av: Avail,
    sites: Sites,
    grid: Grid,
    tariff: Tariff,
    cap_rem: np.ndarray,
    max_locs: int,
    sc: Scratch,
    rows: Rows,
    out: Outcome,
) -> int:
    """Greedy sourcing of ``seq[start:]`` in that order; returns where it stopped.

    ``av`` (the lazy per-entry availability state) and ``cap_rem`` (pick capacity left
    per location, -1 = unlimited) are consumed in place. Stops early (returning the
    next position in ``seq``) when the row buffers might not hold the next order; the
    caller grows them and resumes.
    """
    o_ptr, l_sku, l_qty = orders.ptr, orders.sku, orders.qty
    s_ptr, s_loc = lists.ptr, lists.loc
    ok_ship, zone_cost = sites.ok, tariff.zone_cost
    rem, pq, cand_loc = sc.rem, sc.pq, sc.cand_loc
    cand_pos, cand_spu, io = sc.cand_pos, sc.cand_spu, sc.io
    alt = sc.alt
    line_unfilled, line_reason = out.line_unfilled, out.line_reason
    nloc = sites.lat.shape[0]
    use_zone = zone_cost.shape[0] > 0
    for t in range(start, seq.shape[0]):
        o = seq[t]
        b = o_ptr[o]
        nl = o_ptr[o + 1] - b
        bound = nl * (max_locs if max_locs < nloc else nloc)
        if io[0] + bound > rows.order.shape[0]:
            return t
        c = orders.channel[o]
        svc = orders.service[o]
        total = 0
        for j in range(nl):
            rem[j] = l_qty[b + j]
            total += l_qty[b + j]
        out.alt_loc[o] = -1
        out.alt_cost[o] = np.nan
        io[1] += 1
        dest = destination(orders.lat[o], orders.lon[o], orders.zone[o], io[1])
        zo = dest.zone
        used = 0
        nc = 0
        p = -1
        unavailable = False
        from_lists = False
        alt[0] = -1.0
        alt[1] = np.nan
        if svc == S_PICKUP:
            p = orders.pickup[o]
            if not ok_ship[p, 2 * c] or not sites.pickup[p]:
                unavailable = True
            else:
                for j in range(nl):
                    s = l_sku[b + j]
                    pq[j] = find_location(s_loc, s_ptr[s], s_ptr[s + 1], p)
                took = take_from(p, pq, nl, b, c, o, False, rem, cap_rem, av, rows, io)
                total -= took
                if took > 0:
                    used = 1
                from_lists = total > 0
        elif svc == S_SAME_DAY:
            nc = gather_same_day(
                b, nl, dest.lat, dest.lon, l_sku, lists, ok_ship[:, 2 * c], sites, grid, sc
            )
            for k in range(nc):
                zl = tariff.zone[cand_loc[k]]
                if use_zone and zo >= 0 and zl >= 0:
                    cand_spu[k] = zone_cost[zl, zo]
                else:
                    cand_spu[k] = tariff.per_km * sc.cand_km[k]
            used, total = cover(
                nc, nl, b, c, o, used, max_locs, False, total, cap_rem, av, tariff, sc, rows
            )
        else:
            from_lists = True
        if from_lists:
            # ship orders, and what the pick-up store lacks (transfers, store excluded)
            used, total = cover_lists(
                nl, b, c, o, used, max_locs, svc == S_PICKUP, p, total, ok_ship[:, 2 * c + 1],
                dest, l_sku, lists, cap_rem, av, tariff, sites, sc, rows,
            )  # fmt: skip
        if svc != S_PICKUP and alt[0] >= 0:
            out.alt_loc[o] = int(alt[0])
            out.alt_cost[o] = alt[1]
        limited = total > 0 and used >= max_locs
        for j in range(nl):
            line_unfilled[b + j] = rem[j]
            if rem[j] <= 0:
                line_reason[b + j] = R_NONE
                continue
            if unavailable:
                line_reason[b + j] = R_LOCATION_UNAVAILABLE
                continue
            # which candidates still hold the SKU: with open capacity (only matters
            # when the split limit stopped the order) or with none left
            has_open = False
            has_blocked = False
            if p >= 0 and pq[j] >= 0:
                if avail_at(pq[j], c, av) > 0:
                    if cap_rem[p] != 0:
                        has_open = True
                    else:
                        has_blocked = True
            s = l_sku[b + j]
            if svc == S_SAME_DAY:
                for k in range(nc):
                    if has_open if limited else has_blocked:
                        break
                    q = cand_pos[k, j]
                    if q < 0:
                        continue
                    open_ = cap_rem[cand_loc[k]] != 0
                    if open_ and not limited:
                        continue
                    if not open_ and has_blocked:
                        continue
                    if avail_at(q, c, av) > 0:
                        if open_:
                            has_open = True
                        else:
                            has_blocked = True
            else:
                for q in range(s_ptr[s], s_ptr[s + 1]):
                    if has_open if limited else has_blocked:
                        break
                    loc = s_loc[q]
                    if not ok_ship[loc, 2 * c + 1] or loc == p:
                        continue
                    open_ = cap_rem[loc] != 0
                    if open_ and not limited:
                        continue
                    if not open_ and has_blocked:
                        continue
                    if avail_at(q, c, av) > 0:
                        if open_:
                            has_open = True
                        else:
                            has_blocked = True
            if has_open and limited:
                line_reason[b + j] = R_SPLIT_LIMIT
            elif has_blocked:
                line_reason[b + j] = R_CAPACITY
            else:
                reason = R_NO_STOCK
                if svc == S_SAME_DAY:
                    for q in range(s_ptr[s], s_ptr[s + 1]):
                        if not ok_ship[s_loc[q], 2 * c]:
                            continue
                        if avail_at(q, c, av) > 0:
                            reason = R_RADIUS
                            break
                line_reason[b + j] = reason
    return seq.shape[0]


@jit
def candidates(
    orders: OrderData,
    lists: Lists,
    sites: Sites,
    grid: Grid,
    tariff: Tariff,
    sc: Scratch,
    table: Table,
    fill: bool,
) -> None:
    """Candidate table of every order (two passes: ``fill=False`` only counts into
    ``table.counts`` = [candidates, line entries])."""
    o_ptr, l_sku, o_chan = orders.ptr, orders.sku, orders.channel
    o_service = orders.service
    o_lat, o_lon, o_pickup = orders.lat, orders.lon, orders.pickup
    o_zone = orders.zone
    s_ptr, s_loc = lists.ptr, lists.loc
    loc_lat, loc_lon, ok = sites.lat, sites.lon, sites.ok
    loc_pickup = sites.pickup
    c_km, loc_zone, zone_cost = tariff.per_km, tariff.zone, tariff.zone_cost
    cand_loc, cand_pos, cand_km = sc.cand_loc, sc.cand_pos, sc.cand_km
    counts, ptr, location = table.counts, table.ptr, table.location
    km, spu, transfer = table.km, table.spu, table.transfer
    line_ptr, entry = table.line_ptr, table.entry
    use_zone = zone_cost.shape[0] > 0
    nk = 0
    ne = 0
    for o in range(o_ptr.shape[0] - 1):
        b = o_ptr[o]
        nl = o_ptr[o + 1] - b
        c = o_chan[o]
        svc = o_service[o]
        lat = o_lat[o]
        lon = o_lon[o]
        zo = o_zone[o]
        first = 0
        if svc == S_PICKUP:
            p = o_pickup[o]
            if not ok[p, 2 * c] or not loc_pickup[p]:
                if fill:
                    ptr[o + 1] = nk
                continue
            if fill:
                location[nk] = p
                km[nk] = 0.0
                spu[nk] = 0.0
                transfer[nk] = False
                line_ptr[nk] = ne
                for j in range(nl):
                    s = l_sku[b + j]
                    entry[ne + j] = find_location(s_loc, s_ptr[s], s_ptr[s + 1], p)
                line_ptr[nk + 1] = ne + nl
            nk += 1
            ne += nl
            first = 1
            nc = gather_from_skus(b, nl, p, o, l_sku, lists, ok[:, 2 * c + 1], sc)
            for k in range(nc):
                cand_km[k] = haversine_km(loc_lat[cand_loc[k]], loc_lon[cand_loc[k]], lat, lon)
        elif svc == S_SAME_DAY:
            nc = gather_same_day(b, nl, lat, lon, l_sku, lists, ok[:, 2 * c], sites, grid, sc)
        else:
            nc = gather_from_skus(b, nl, -1, o, l_sku, lists, ok[:, 2 * c + 1], sc)
            for k in range(nc):
                cand_km[k] = haversine_km(loc_lat[cand_loc[k]], loc_lon[cand_loc[k]], lat, lon)
        if fill:
            for k in range(nc):
                loc = cand_loc[k]
                location[nk] = loc
                km[nk] = cand_km[k]
                zl = loc_zone[loc]
                if use_zone and zo >= 0 and zl >= 0:
                    spu[nk] = zone_cost[zl, zo]
                else:
                    spu[nk] = c_km * cand_km[k]
                transfer[nk] = first == 1
                line_ptr[nk] = ne
                for j in range(nl):
                    entry[ne + j] = cand_pos[k, j]
                line_ptr[nk + 1] = ne + nl
                nk += 1
                ne += nl
            ptr[o + 1] = nk
        else:
            nk += nc
            ne += nc * nl
    counts[0] = nk
    counts[1] = ne


@jit
def position_atp(stock: Stock, row: int, c: int) -> int:
    """available(c) of ledger position ``row`` from the ledger's per-position views
    (the parts of :func:`allocator._kernels.atp.atp`)."""
    on_hand, safety, fence = stock.on_hand, stock.safety, stock.fence
    cap, reserved = stock.cap, stock.reserved
    total = 0
    unused = 0
    for cc in range(fence.shape[1]):
        r = reserved[row, cc]
        total += r
        unused += unused_fence(fence[row, cc], r)
    free = on_hand[row] - total - safety[row]
    return atp_of(
        free, unused, unused_fence(fence[row, c], reserved[row, c]), cap[row, c] - reserved[row, c]
    )


@jit
def nearby(
    skus: np.ndarray,
    lists: Lists,
    stock: Stock,
    c: int,
    ok: np.ndarray,
    lat: float,
    lon: float,
    radius: float,
    same_day: bool,
    sites: Sites,
    out_loc: np.ndarray,
    out_av: np.ndarray,
    out_km: np.ndarray,
    count: np.ndarray,
) -> None:
    """The ``k = out_loc.shape[1]`` nearest eligible in-stock locations per SKU.

    Ranks a SKU's positions by squared chord length between unit vectors (the same
    order as great-circle distance, without trigonometry); ties keep the lower
    location index. ``radius < 0`` means no radius.
    """
    s_ptr, s_loc, s_row = lists
    xyz, loc_sd, loc_lat = sites.xyz, sites.same_day_km, sites.lat
    loc_lon = sites.lon
    k = out_loc.shape[1]
    px, py, pz = unit_vector(lat, lon)
    best = np.empty(k, dtype=np.float64)
    for i in range(skus.shape[0]):
        s = skus[i]
        cnt = 0
        for q in range(s_ptr[s], s_ptr[s + 1]):
            loc = s_loc[q]
            if not ok[loc]:
                continue
            dx = xyz[loc, 0] - px
            dy = xyz[loc, 1] - py
            dz = xyz[loc, 2] - pz
            d2 = dx * dx + dy * dy + dz * dz
            if cnt == k and d2 >= best[k - 1]:
                continue
            a = position_atp(stock, s_row[q], c)
            if a <= 0:
                continue
            if radius >= 0.0 or same_day:
                km = haversine_km(loc_lat[loc], loc_lon[loc], lat, lon)
                if radius >= 0.0 and km > radius:
                    continue
                if same_day and km > loc_sd[loc]:
                    continue
            t = cnt if cnt < k else k - 1
            while t > 0 and best[t - 1] > d2:
                best[t] = best[t - 1]
                out_loc[i, t] = out_loc[i, t - 1]
                out_av[i, t] = out_av[i, t - 1]
                t -= 1
            best[t] = d2
            out_loc[i, t] = loc
            out_av[i, t] = a
            if cnt < k:
                cnt += 1
        count[i] = cnt
        for t in range(cnt):
            loc = out_loc[i, t]
            out_km[i, t] = haversine_km(loc_lat[loc], loc_lon[loc], lat, lon)


@jit
def atp_rows(stock: Stock, rows: np.ndarray, channels: np.ndarray, out: np.ndarray) -> None:
    """``out[i, c] = available(c)`` of ledger position ``rows[i]`` for each ``c`` in
    ``channels`` (other columns untouched)."""
    for i in range(rows.shape[0]):
        for t in range(channels.shape[0]):
            c = channels[t]
            out[i, c] = position_atp(stock, rows[i], c)


# ---------------------------------------------------------------------------
# pricing
@jit
def price(
    order: np.ndarray,
    location: np.ndarray,
    qty: np.ndarray,
    orders: OrderData,
    l_pen: np.ndarray,
    line_unfilled: np.ndarray,
    loc_lat: np.ndarray,
    loc_lon: np.ndarray,
    tariff: Tariff,
    c_split: float,
    row: RowCosts,
    per: OrderCosts,
) -> int:
    """Cost parts of allocation rows ``(order, location, qty)`` and per-order totals
    (the formula of :func:`allocator.sourcing.plan_costs`; an unfilled unit of line
    ``j`` costs ``l_pen[j]``).
    Per-order outputs must be zeroed by the caller. A package is a distinct
    ``(order, location)`` pair; rows need not be sorted. Returns -1, or the first row
    whose order or location is out of range (nothing is written then)."""
    o_ptr, o_service, o_pickup = orders.ptr, orders.service, orders.pickup
    o_lat, o_lon, o_zone = orders.lat, orders.lon, orders.zone
    loc_mult, loc_zone, zone_cost = tariff.mult, tariff.zone, tariff.zone_cost
    c_pkg, c_unit, c_km = tariff.per_package, tariff.per_unit, tariff.per_km
    row_km, row_unit, row_ship = row
    packages, units, km = per.packages, per.units, per.km
    package_cost, unit_cost, shipping_cost = per.package_cost, per.unit_cost, per.shipping_cost
    split_cost, unfilled_units, unfilled_cost = (
        per.split_cost,
        per.unfilled_units,
        per.unfilled_cost,
    )
    cost = per.cost
    n = o_ptr.shape[0] - 1
    nloc = loc_lat.shape[0]
    use_zone = zone_cost.shape[0] > 0
    nr = order.shape[0]
    for i in range(nr):
        if order[i] < 0 or order[i] >= n or location[i] < 0 or location[i] >= nloc:
            return i
    for i in range(nr):
        o = order[i]
        loc = location[i]
        q = qty[i]
        pick = o_service[o] == S_PICKUP
        p = o_pickup[o]
        if pick and p == loc:
            d = 0.0
            spu = 0.0
        else:
            if pick:
                d = haversine_km(loc_lat[loc], loc_lon[loc], loc_lat[p], loc_lon[p])
                zo = loc_zone[p]
            else:
                d = haversine_km(loc_lat[loc], loc_lon[loc], o_lat[o], o_lon[o])
                zo = o_zone[o]
            spu = c_km * d
            zl = loc_zone[loc]
            if use_zone and zl >= 0 and zo >= 0:
                spu = zone_cost[zl, zo]
        row_km[i] = d
        row_unit[i] = loc_mult[loc] * c_unit * q
        row_ship[i] = spu * q
        units[o] += q
        unit_cost[o] += row_unit[i]
        shipping_cost[o] += row_ship[i]
    # packages: group rows by order (stable counting sort), then distinct locations
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(nr):
        start[order[i] + 1] += 1
    for o in range(n):
        start[o + 1] += start[o]
    perm = np.empty(nr, dtype=np.int64)
    fill = start[:-1].copy()
    for i in range(nr):
        o = order[i]
        perm[fill[o]] = i
        fill[o] += 1
    seen = np.full(nloc, -1, dtype=np.int64)
    for o in range(n):
        for t in range(start[o], start[o + 1]):
            i = perm[t]
            loc = location[i]
            if seen[loc] == o:
                continue
            seen[loc] = o
            packages[o] += 1
            package_cost[o] += loc_mult[loc] * c_pkg
            km[o] += row_km[i]
    for o in range(n):
        extra = packages[o] - 1
        split_cost[o] = c_split * (extra if extra > 0 else 0)
        for j in range(o_ptr[o], o_ptr[o + 1]):
            u = line_unfilled[j]
            unfilled_units[o] += u
            unfilled_cost[o] += l_pen[j] * u
        cost[o] = package_cost[o] + unit_cost[o] + shipping_cost[o] + split_cost[o]
        cost[o] += unfilled_cost[o]
    return -1
