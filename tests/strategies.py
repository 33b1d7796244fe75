"""Shared hypothesis strategies."""

from __future__ import annotations

from hypothesis import strategies as st

from allocator.events import ALL, NO_EXPIRY, EventKind

KINDS = list(EventKind)


@st.composite
def event_rows(
    draw: st.DrawFn,
    *,
    num_skus: int,
    num_locations: int,
    num_channels: int,
    fresh_ids: list[int],
    old_ids: list[int],
    reservation_ids: list[int],
    max_size: int = 8,
) -> list[tuple[int, ...]]:
    """A structurally valid batch of rows ``(id, kind, sku, loc, chan, qty, ref, exp, link)``.

    ``fresh_ids`` is a one-element list used as a counter; ``old_ids`` and
    ``reservation_ids`` are drawn from to produce duplicates and resolutions.
    """
    n = draw(st.integers(1, max_size))
    rows: list[list[int]] = []
    for _ in range(n):
        kind = draw(st.sampled_from(KINDS))
        choice = draw(st.integers(0, 9))
        if choice == 0 and old_ids:
            ident = draw(st.sampled_from(old_ids))
        elif choice == 1:
            ident = 0
        else:
            fresh_ids[0] += 1
            ident = fresh_ids[0]
        sku = draw(st.integers(0, num_skus - 1))
        loc = draw(st.integers(0, num_locations - 1))
        chan = draw(st.integers(0, num_channels - 1))
        qty = draw(st.integers(1, 6))
        ref = 0
        exp = NO_EXPIRY
        if kind == EventKind.EXPIRE:
            sku = loc = chan = -1
            qty = 0
            exp = draw(st.integers(0, 30))
        elif kind in (EventKind.COMMIT, EventKind.RELEASE):
            if reservation_ids and draw(st.integers(0, 4)):
                ref = draw(st.sampled_from(reservation_ids))
            else:
                ref = draw(st.integers(1, 10_000))
            mismatch = draw(st.integers(0, 9)) == 0
            if not mismatch:
                sku = loc = -1
            chan = -1
            if kind == EventKind.RELEASE:
                qty = 0
            elif draw(st.booleans()):
                qty = ALL
        elif kind == EventKind.RESERVE:
            exp = draw(st.sampled_from([NO_EXPIRY, NO_EXPIRY, 5, 10, 20]))
        elif kind == EventKind.TRANSFER_OUT:
            ref = (loc + draw(st.integers(1, num_locations - 1))) % num_locations
            chan = -1
        elif kind in (EventKind.ADJUST, EventKind.SET_SAFETY, EventKind.SET_FENCE):
            qty = draw(st.integers(0, 8))
        elif kind == EventKind.SET_CAP:
            qty = draw(st.sampled_from([-1, 0, 1, 2, 4, 8]))
        if kind in (
            EventKind.RECEIVE,
            EventKind.TRANSFER_IN,
            EventKind.RETURN,
            EventKind.RETURN_NONSELLABLE,
            EventKind.ADJUST,
            EventKind.SET_SAFETY,
        ):
            chan = -1
        link = draw(st.integers(0, 3)) == 0
        rows.append([ident, int(kind), sku, loc, chan, qty, ref, exp, int(link)])
    for i, row in enumerate(rows):  # expire cannot be part of a linked group
        if row[1] == EventKind.EXPIRE:
            row[8] = 0
            if i:
                rows[i - 1][8] = 0
    return [tuple(r) for r in rows]
