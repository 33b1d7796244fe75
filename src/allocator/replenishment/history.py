"""Sales history in the long format analysts keep: one row per (sku, location, date).

:func:`sales_history` turns such a frame into the ``(num_positions, num_periods)``
array the forecasts read, aligned to the ledger's positions, with dates binned
into periods (days by default). :func:`unheld_positions` lists the sales that
fall on positions the ledger has never held, which are the ones to open first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocator._validate import as_int64, first_true
from allocator.exceptions import DTypeError, ValidationError
from allocator.ledger import BaseLedger

__all__ = ["sales_history", "unheld_positions"]

_REQUIRED = ("sku", "location", "qty")
_TIME = ("date", "period")


def _columns(frame: Any) -> str:
    """Check the columns; return the time column's name."""
    cols = list(frame.columns)
    missing = [c for c in _REQUIRED if c not in cols]
    if missing:
        raise ValidationError(
            f"the sales frame has no column {missing[0]!r}; expected columns sku, location, "
            "qty and date (or period)",
            field=f"demand.{missing[0]}",
            code="missing_field",
        )
    time_cols = [c for c in _TIME if c in cols]
    if len(time_cols) != 1:
        raise ValidationError(
            "the sales frame needs one of the columns 'date' (datetime64 or ISO strings) "
            "and 'period' (integer period numbers)",
            field="demand.date",
            code="missing_field" if not time_cols else "invalid_choice",
        )
    unknown = [c for c in cols if c not in (*_REQUIRED, *_TIME)]
    if unknown:
        raise ValidationError(
            f"unknown column {unknown[0]!r} in the sales frame; expected sku, location, qty "
            "and date or period (select those columns first)",
            field=f"demand.{unknown[0]}",
            code="field_not_allowed",
        )
    return time_cols[0]


def _positions(frame: Any, ledger: BaseLedger) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    net = ledger.network
    sku = np.atleast_1d(net.sku_index(frame["sku"].to_numpy(), "demand.sku"))
    loc = np.atleast_1d(net.location_index(frame["location"].to_numpy(), "demand.location"))
    rows = np.atleast_1d(ledger.position_index(sku, loc)) if sku.size else np.empty(0, np.int64)
    return sku, loc, rows


def _quantities(frame: Any) -> np.ndarray:
    qty = np.asarray(frame["qty"].to_numpy())
    if qty.dtype == object or qty.dtype.kind not in "iuf" or qty.dtype.kind == "b":
        raise DTypeError(f"expected numbers, got dtype {qty.dtype}", field="demand.qty")
    q = qty.astype(np.float64)
    bad = ~np.isfinite(q)
    if bad.any():
        raise ValidationError(
            "NaN or infinite sales", field="demand.qty", row=first_true(bad), code="not_finite"
        )
    if (q < 0).any():
        raise ValidationError(
            "negative sales (book returns separately)",
            field="demand.qty",
            row=first_true(q < 0),
            code="negative_sales",
        )
    return q


def _periods(frame: Any, column: str, freq: str, start: Any, end: Any) -> tuple[np.ndarray, int]:
    """Period number of each row (-1 outside ``[start, end]``) and the number of periods."""
    if column == "period":
        period = as_int64(frame["period"].to_numpy(), "demand.period", lo=0, code="out_of_range")
        return period, int(period.max()) + 1 if period.size else 1
    import pandas as pd

    raw = frame["date"]
    dates = pd.to_datetime(raw, errors="coerce")
    bad = np.asarray(dates.isna())
    if bad.any():
        r = first_true(bad)
        raise ValidationError(
            f"not a date: {raw.iloc[r]!r} (use datetime64 or ISO strings such as '2024-05-31')",
            field="demand.date",
            row=r,
            code="invalid_date",
        )
    try:
        ordinal = np.asarray(dates.dt.to_period(freq).array.asi8, dtype=np.int64)
        lo = ordinal.min() if start is None else pd.Period(start, freq=freq).ordinal
        hi = ordinal.max() if end is None else pd.Period(end, freq=freq).ordinal
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationError(
            f"cannot bin dates into periods of {freq!r}: {exc}", field="freq", code="invalid_choice"
        ) from exc
    if hi < lo:
        raise ValidationError("end is before start", field="end", code="out_of_range")
    period = np.where((ordinal >= lo) & (ordinal <= hi), ordinal - lo, -1)
    return period, int(hi - lo) + 1


def sales_history(
    frame: Any,
    ledger: BaseLedger,
    *,
    freq: str = "D",
    start: Any = None,
    end: Any = None,
) -> np.ndarray:
    """A long sales frame as a ``(num_positions, num_periods)`` history.

    Parameters
    ----------
    frame
        pandas DataFrame with columns ``sku``, ``location`` (names or indices),
        ``qty`` (units, >= 0) and either ``date`` (``datetime64`` or ISO strings)
        or ``period`` (integer period numbers, 0 the oldest). Several rows of one
        position and period add up; a position without rows sold nothing.
    ledger
        Whose positions the rows follow.
    freq
        Period length for dates: a pandas frequency, ``"D"`` (days, default),
        ``"W"`` (weeks), ``"M"`` (months), ...
    start, end
        First and last period (dates; default the earliest and latest date in the
        frame). Rows outside are left out; periods without sales are zeros.

    Returns
    -------
    numpy.ndarray
        float64, one row per ledger position, oldest period first.

    Raises
    ------
    ValidationError
        A missing or unknown column, an unknown SKU or location name, a date that
        does not parse, negative or NaN sales, and sales for positions the ledger
        has never held: the message names them (SKU and location) and says how to
        open them (:func:`unheld_positions` lists them all).

    Examples
    --------
    >>> import pandas as pd
    >>> from allocator import Ledger, Network
    >>> net = Network()
    >>> _ = net.add_channel("store")
    >>> _ = net.add_location("S1", kind="store", lat=0.0, lon=0.0)
    >>> _ = net.add_sku("A")
    >>> ledger = Ledger(net.build())
    >>> _ = ledger.receive("A", "S1", 5)
    >>> sales = pd.DataFrame({"sku": ["A", "A"], "location": ["S1", "S1"],
    ...                       "date": ["2024-05-01", "2024-05-03"], "qty": [2, 1]})
    >>> sales_history(sales, ledger).tolist()
    [[2.0, 0.0, 1.0]]
    """
    column = _columns(frame)
    sku, loc, rows = _positions(frame, ledger)
    qty = _quantities(frame)
    period, num_periods = _periods(frame, column, freq, start, end)
    missing = rows < 0
    if missing.any():
        net = ledger.network
        pairs = np.unique(np.stack([sku[missing], loc[missing]], axis=1), axis=0)
        named = ", ".join(
            f"{net.sku_names[s]} at {net.location_names[c]}" for s, c in pairs[:5].tolist()
        )
        more = f" and {pairs.shape[0] - 5} more" if pairs.shape[0] > 5 else ""
        raise ValidationError(
            f"sales for {pairs.shape[0]} position(s) the ledger has never held: {named}{more}. "
            "Open them with a count of zero, ledger.adjust(sku, location, 0), and run again "
            "so they are replenished (allocator.replenishment.unheld_positions(frame, ledger) "
            "lists them all), or drop their rows",
            field="demand",
            row=first_true(missing),
            code="position_not_held",
        )
    hist = np.zeros((ledger.num_positions, num_periods))
    keep = period >= 0
    np.add.at(hist, (rows[keep], period[keep]), qty[keep])
    return hist


def unheld_positions(frame: Any, ledger: BaseLedger) -> Any:
    """The (sku, location) pairs of a long sales frame that the ledger has never held,
    with their total ``qty``, as a DataFrame of names (empty when there are none).

    Opening them with a zero count makes them ledger positions, so that
    :func:`~allocator.replenishment.replenish` plans them::

        new = unheld_positions(sales, ledger)
        ledger.adjust(new["sku"].to_numpy(), new["location"].to_numpy(), 0)
    """
    import pandas as pd

    _columns(frame)
    sku, loc, rows = _positions(frame, ledger)
    qty = _quantities(frame)
    missing = rows < 0
    net = ledger.network
    if not missing.any():
        return pd.DataFrame({"sku": [], "location": [], "qty": []})
    pairs, inverse = np.unique(
        np.stack([sku[missing], loc[missing]], axis=1), axis=0, return_inverse=True
    )
    total = np.zeros(pairs.shape[0], dtype=np.int64)  # exact: quantities are int64
    np.add.at(total, inverse.reshape(-1), np.asarray(qty[missing], dtype=np.int64))
    return pd.DataFrame(
        {
            "sku": np.asarray(net.sku_names, dtype=object)[pairs[:, 0]],
            "location": np.asarray(net.location_names, dtype=object)[pairs[:, 1]],
            "qty": total,
        }
    )
