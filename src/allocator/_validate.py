"""Validation helpers used at the public edge.

Each helper converts an input to the canonical dtype or raises a
:class:`~allocator.exceptions.ValidationError` naming the field and the first bad row.
Inputs are never modified; the returned arrays are fresh or read-only views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from allocator.exceptions import DTypeError, ValidationError

#: Largest quantity a single event, order line or forecast may carry (10**12).
QTY_MAX = 10**12


#: Fields holding quantities; their dtype errors say ``quantity_must_be_integer``.
QUANTITY_FIELDS = frozenset({"qty", "quantity", "counted", "on_hand"})


def _integer_code(field: str) -> str:
    """The error code for a non-integer value in ``field`` (specific per field)."""
    return "quantity_must_be_integer" if field in QUANTITY_FIELDS else f"{field}_must_be_integer"


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, np.integer) and not isinstance(v, np.bool_)
    )


def first_true(mask: np.ndarray) -> int:
    """Index of the first True in ``mask`` (``mask`` must contain one)."""
    return int(np.argmax(mask))


def as_int64(
    value: Any,
    field: str,
    *,
    size: int | None = None,
    lo: int | None = None,
    hi: int | None = None,
    code: str = "out_of_range",
) -> np.ndarray:
    """Return ``value`` as a 1-D int64 array, rejecting floats, bools and objects.

    Parameters
    ----------
    value
        Scalar or array-like of integers. A scalar is broadcast to ``size``.
    field
        Name used in error messages.
    size
        Required length (scalars are broadcast to it).
    lo, hi
        Inclusive bounds checked on every row.
    code
        Error code used when a bound is violated.
    """
    dtype_code = _integer_code(field)
    arr = np.asarray(value)
    if arr.dtype == object:
        flat = arr.ravel().tolist()
        bad = [i for i, v in enumerate(flat) if not _is_int(v)]
        if not bad:  # Python ints beyond int64
            row = next(i for i, v in enumerate(flat) if not -(2**63) <= v < 2**63)
            raise ValidationError(
                f"value {flat[row]} does not fit in int64",
                field=field,
                row=row if arr.ndim else None,
                code=code if code != "out_of_range" else "quantity_out_of_range",
            )
        row = bad[0]
        raise DTypeError(
            f"expected integers, got a value of type {type(flat[row]).__name__}",
            field=field,
            row=row if arr.ndim else None,
            code=dtype_code,
        )
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iu":
        bad_row: int | None = 0 if arr.ndim else None
        if arr.dtype.kind == "f" and arr.ndim and arr.size:
            nonint = ~np.isfinite(arr) | (arr != np.round(arr))
            bad_row = first_true(nonint) if nonint.any() else 0
        raise DTypeError(
            f"expected an integer dtype, got {arr.dtype}",
            field=field,
            row=bad_row,
            code=dtype_code,
        )
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        row = first_true(arr > np.iinfo(np.int64).max)
        raise ValidationError("value exceeds int64", field=field, row=row, code=code)
    if arr.ndim == 0:
        if size is None:
            arr = arr.reshape(1)
        else:
            arr = np.full(size, arr, dtype=np.int64)
    elif arr.ndim != 1:
        raise ValidationError(f"expected a 1-D array, got shape {arr.shape}", field=field)
    out = arr.astype(np.int64, copy=True)
    if size is not None and out.shape[0] != size:
        raise ValidationError(
            f"expected {size} rows, got {out.shape[0]}", field=field, code="length_mismatch"
        )
    check_range(out, field, lo=lo, hi=hi, code=code)
    return out


def check_range(
    arr: np.ndarray,
    field: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    code: str = "out_of_range",
) -> None:
    """Raise if any element of ``arr`` lies outside ``[lo, hi]``."""
    if lo is not None:
        bad = arr < lo
        if bad.any():
            row = first_true(bad)
            raise ValidationError(
                f"value {arr[row]} is below the minimum {lo}", field=field, row=row, code=code
            )
    if hi is not None:
        bad = arr > hi
        if bad.any():
            row = first_true(bad)
            raise ValidationError(
                f"value {arr[row]} is above the maximum {hi}", field=field, row=row, code=code
            )


def as_float64(
    value: Any,
    field: str,
    *,
    size: int | None = None,
    lo: float | None = None,
    hi: float | None = None,
    allow_nan: bool = False,
    code: str = "out_of_range",
) -> np.ndarray:
    """Return ``value`` as a 1-D float64 array; NaN/inf rejected unless ``allow_nan``."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(
            f"expected numbers, got dtype {arr.dtype}", field=field, code="wrong_dtype"
        )
    if arr.ndim == 0:
        arr = np.full(1 if size is None else size, arr, dtype=np.float64)
    elif arr.ndim != 1:
        raise ValidationError(f"expected a 1-D array, got shape {arr.shape}", field=field)
    out = arr.astype(np.float64, copy=True)
    if size is not None and out.shape[0] != size:
        raise ValidationError(
            f"expected {size} rows, got {out.shape[0]}", field=field, code="length_mismatch"
        )
    finite = np.isfinite(out)
    if allow_nan:
        bad = np.isinf(out)
    else:
        bad = ~finite
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"value {out[row]} is not finite", field=field, row=row, code="not_finite"
        )
    check_range(out[finite] if allow_nan else out, field, lo=lo, hi=hi, code=code)
    return out


def as_bool(value: Any, field: str, *, size: int) -> np.ndarray:
    """Return ``value`` as a 1-D bool array of length ``size`` (scalars broadcast)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biu":
        raise DTypeError(f"expected booleans, got dtype {arr.dtype}", field=field)
    if arr.dtype.kind in "iu" and arr.size and ((arr != 0) & (arr != 1)).any():
        row = first_true((arr != 0) & (arr != 1)) if arr.ndim else None
        raise ValidationError("expected 0/1 or booleans", field=field, row=row)
    if arr.ndim == 0:
        return np.full(size, bool(arr), dtype=np.bool_)
    if arr.shape != (size,):
        raise ValidationError(
            f"expected {size} rows, got shape {arr.shape}", field=field, code="length_mismatch"
        )
    return arr.astype(np.bool_, copy=True)


def check_name(name: Any, field: str, row: int | None = None) -> str:
    """Validate one identifier: a non-empty str without surrounding blanks or controls."""
    if not isinstance(name, str):
        raise DTypeError(
            f"expected a str name, got {type(name).__name__}",
            field=field,
            row=row,
            code="invalid_identifier",
        )
    if not name or name != name.strip() or len(name) > 256:
        raise ValidationError(
            f"invalid name {name[:40]!r}: must be 1-256 characters without surrounding blanks",
            field=field,
            row=row,
            code="invalid_identifier",
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValidationError(
            f"invalid name {name[:40]!r}: contains control characters",
            field=field,
            row=row,
            code="invalid_identifier",
        )
    return name


def same_length(field_arrays: Sequence[tuple[str, np.ndarray]]) -> int:
    """Check that all arrays share one length and return it."""
    n = field_arrays[0][1].shape[0]
    for field, arr in field_arrays[1:]:
        if arr.shape[0] != n:
            raise ValidationError(
                f"expected {n} rows (like {field_arrays[0][0]!r}), got {arr.shape[0]}",
                field=field,
                code="length_mismatch",
            )
    return n


def readonly(arr: np.ndarray) -> np.ndarray:
    """Return a read-only view of ``arr``."""
    view = arr.view()
    view.flags.writeable = False
    return view
