"""The inputs of a replenishment run, validated and laid out as columns.

:func:`_prepare` checks every argument of :func:`~allocator.replenishment.replenish`
before anything is planned (each error names its ``field`` and first bad ``row``)
and returns a :class:`_Part`: one value per position for the ledger state, scalars
and per-SKU tables kept whole, so that a partition of positions (:meth:`_Part.take`)
carries only its own rows to a worker.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._validate import as_float64, as_int64, first_true
from allocator.exceptions import DTypeError, ValidationError
from allocator.ledger import BaseLedger
from allocator.network import NetworkData
from allocator.replenishment.forecast import Forecast, check_history
from allocator.replenishment.history import sales_history
from allocator.replenishment.policies import (
    MinMaxPolicy,
    OptimalPoissonPolicy,
    OrderUpToPolicy,
    ReorderPointPolicy,
)
from allocator.replenishment.transfers import transfer_cost_matrix

# ---------------------------------------------------------------- validation
#: How a parameter given per position travels: ``("scalar", value[1])``,
#: ``("sku", table[num_skus])`` or ``("position", column[num_positions])``.
_Param = tuple[str, np.ndarray]


def _param(
    value: Any,
    field: str,
    num_positions: int,
    num_skus: int,
    *,
    integer: bool,
    lo: float | None = None,
    allow_nan: bool = False,
) -> _Param:
    """A scalar, per-position or per-SKU argument, validated, in its compact form."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        kind, size = "scalar", 1
    elif arr.ndim == 1 and arr.shape[0] != num_positions and arr.shape[0] == num_skus:
        kind, size = "sku", num_skus
    else:
        kind, size = "position", num_positions
    if integer:
        out = as_int64(arr, field, size=size, lo=None if lo is None else int(lo))
    else:
        out = as_float64(arr, field, size=size, lo=lo, allow_nan=allow_nan)
    return kind, out


def _expand(param: _Param, sku: np.ndarray) -> np.ndarray:
    """One value per position of ``sku`` (a partition's SKUs)."""
    kind, value = param
    if kind == "scalar":
        return np.full(sku.shape[0], value[0], dtype=value.dtype)
    if kind == "sku":
        return value[sku]
    return value


def _real(value: Any, field: str, *, lo: float = 0.0, allow_inf: bool = False) -> float:
    """A real number (not a bool or a string) >= ``lo``; NaN always rejected."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise DTypeError(
            f"expected a number, got {type(value).__name__}", field=field, code="wrong_dtype"
        )
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise ValidationError(f"expected a finite number, got {x}", field=field, code="not_finite")
    if x < lo:
        raise ValidationError(f"expected a value >= {lo:g}, got {x:g}", field=field)
    return x


def _integer(value: Any, field: str, *, lo: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise DTypeError(
            f"expected an int, got {type(value).__name__}",
            field=field,
            code="quantity_must_be_integer",
        )
    if int(value) < lo:
        raise ValidationError(f"expected a value >= {lo}, got {int(value)}", field=field)
    return int(value)


def _target(policy: Any) -> None:
    if policy.service_level is not None and policy.fill_rate is not None:
        raise ValidationError(
            "give one of service_level and fill_rate, not both",
            field="service_level",
            code="invalid_choice",
        )
    for name in ("service_level", "fill_rate"):
        value = getattr(policy, name)
        if value is None:
            continue
        arr = as_float64(value, name)
        bad = ~((arr > 0.0) & (arr < 1.0))
        if bad.any():
            raise ValidationError(
                f"expected a value in (0, 1), got {arr[first_true(bad)]}",
                field=name,
                row=first_true(bad) if np.ndim(value) else None,
                code="out_of_range",
            )
    if policy.distribution not in ("normal", "poisson"):
        raise ValidationError(
            f"expected 'normal' or 'poisson', got {policy.distribution!r}",
            field="distribution",
            code="invalid_choice",
        )


def _policy_column(value: Any, field: str, n: int, *, integer: bool, lo: float) -> None:
    arr = np.asarray(value)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, n)):
        raise ValidationError(
            f"expected a scalar or {n} values (one per position), got shape {arr.shape}",
            field=field,
            code="length_mismatch",
        )
    if integer:
        as_int64(arr, field, lo=int(lo))
    else:
        as_float64(arr, field, lo=lo)


def _check_policy(policy: Any, n: int, lt: np.ndarray, rp: np.ndarray) -> None:
    """Every field of the policy, before any position is planned."""
    if not isinstance(
        policy, OrderUpToPolicy | ReorderPointPolicy | MinMaxPolicy | OptimalPoissonPolicy
    ):
        raise DTypeError(
            "expected OrderUpToPolicy, ReorderPointPolicy, MinMaxPolicy or "
            f"OptimalPoissonPolicy, got {type(policy).__name__}",
            field="policy",
            code="wrong_dtype",
        )
    if isinstance(policy, OptimalPoissonPolicy):
        for name in ("order_cost", "holding_cost", "backorder_cost"):
            _policy_column(getattr(policy, name), name, n, integer=False, lo=0.0)
        total = lt + rp
        bad = (total != np.round(total)) | (total < 1)
        if bad.any():
            raise ValidationError(
                "exact (s, S) needs whole-period lead_time + review_period >= 1",
                field="lead_time",
                row=first_true(bad),
            )
        h = np.broadcast_to(np.asarray(policy.holding_cost, dtype=np.float64), (max(n, 1),))
        p = np.broadcast_to(np.asarray(policy.backorder_cost, dtype=np.float64), (max(n, 1),))
        if np.any(h + p <= 0):
            raise ValidationError(
                "holding_cost + backorder_cost must be > 0",
                field="holding_cost",
                row=first_true(h + p <= 0) if np.ndim(policy.holding_cost) else None,
            )
        return
    _target(policy)
    if isinstance(policy, ReorderPointPolicy | MinMaxPolicy):
        if policy.order_quantity is not None:
            _policy_column(policy.order_quantity, "order_quantity", n, integer=True, lo=1)
        elif policy.order_cost is None or policy.holding_cost is None:
            raise ValidationError(
                "give order_quantity, or order_cost and holding_cost for EOQ",
                field="order_quantity",
                code="missing_value",
            )
        else:
            _policy_column(policy.order_cost, "order_cost", n, integer=False, lo=0.0)
            _policy_column(policy.holding_cost, "holding_cost", n, integer=False, lo=0.0)
            h = np.asarray(policy.holding_cost, dtype=np.float64)
            if np.any(h <= 0):
                raise ValidationError(
                    "expected holding_cost > 0",
                    field="holding_cost",
                    row=first_true(np.atleast_1d(h <= 0)) if h.ndim else None,
                )


def _take_policy(policy: Any, rows: np.ndarray, n: int) -> Any:
    """The policy for a partition: per-position fields cut to its rows."""
    cut = {}
    for f in dataclasses.fields(policy):
        value = getattr(policy, f.name)
        if isinstance(value, np.ndarray | list | tuple):
            arr = np.asarray(value)
            if arr.ndim == 1 and arr.shape[0] == n and n > 1:
                cut[f.name] = arr[rows]
    return dataclasses.replace(policy, **cut) if cut else policy


# ------------------------------------------------------------------- columns
@dataclass(frozen=True, eq=False)
class _Part:
    """The columnar inputs of a set of positions: every position, or one partition.

    ``columns``: one value per position (``row`` is the ledger row); ``params``:
    :data:`_Param` arguments (scalars and per-SKU tables whole, per-position ones
    cut to the rows); ``history`` (any exact numeric dtype) or ``mean``/``std``.
    """

    columns: dict[str, np.ndarray]
    params: dict[str, _Param]
    policy: Any
    history: np.ndarray | None
    mean: np.ndarray | None
    std: np.ndarray | None

    @property
    def num_positions(self) -> int:
        return int(self.columns["row"].shape[0])

    def take(self, rows: np.ndarray) -> _Part:
        """The partition holding ``rows`` (ascending ledger rows)."""
        n = self.num_positions
        return _Part(
            columns={k: v[rows] for k, v in self.columns.items()},
            params={
                k: (kind, v[rows] if kind == "position" else v)
                for k, (kind, v) in self.params.items()
            },
            policy=_take_policy(self.policy, rows, n),
            history=None if self.history is None else self.history[rows],
            mean=None if self.mean is None else self.mean[rows],
            std=None if self.std is None else self.std[rows],
        )


@dataclass(frozen=True, eq=False)
class _Settings:
    """What every partition shares (small): switches and the transfer cost matrix."""

    transfers: bool
    costs: np.ndarray | None
    max_sources: int | None
    transfer_threads: int
    cover_threshold: float
    forecast_method: str
    alpha: float
    budget: bool


def _prepare(
    network: NetworkData, ledger: BaseLedger, demand: Any, *, distributed: bool, **kw: Any
) -> tuple[_Part, _Settings, dict[str, Any]]:
    """Validate every argument and lay the inputs out as columns."""
    if not isinstance(network, NetworkData):
        raise ValidationError("expected a NetworkData", field="network", code="wrong_type")
    if not isinstance(ledger, BaseLedger):
        raise ValidationError(
            f"expected a Ledger, got {type(ledger).__name__}", field="ledger", code="wrong_type"
        )
    network.require_same(ledger.network, "ledger", "the ledger")
    policy = OrderUpToPolicy() if kw["policy"] is None else kw["policy"]
    n = ledger.num_positions
    nsku = network.num_skus
    sku = np.array(ledger.position_sku, dtype=np.int64)
    loc = np.array(ledger.position_location, dtype=np.int64)

    params = {
        "lead_time": _param(kw["lead_time"], "lead_time", n, nsku, integer=False, lo=0.0),
        "review_period": _param(
            kw["review_period"], "review_period", n, nsku, integer=False, lo=0.0
        ),
        "moq": _param(kw["moq"], "moq", n, nsku, integer=True, lo=0),
        "pack": _param(kw["pack"], "pack", n, nsku, integer=True, lo=1),
        "shelf_max": _param(kw["shelf_max"], "shelf_max", n, nsku, integer=True, lo=-1),
        "transfer_buffer": _param(
            kw["transfer_buffer"], "transfer_buffer", n, nsku, integer=True, lo=0
        ),
    }
    moq_a, pack_a = _expand(params["moq"], sku), _expand(params["pack"], sku)
    bad = (moq_a > 0) & (pack_a > 1) & (moq_a % pack_a != 0)
    if bad.any():
        r = first_true(bad)
        raise ValidationError(
            f"MOQ {moq_a[r]} is not a multiple of the pack {pack_a[r]}",
            field="moq",
            row=r,
            code="moq_not_multiple_of_pack",
        )
    oo = (
        np.zeros(n, np.int64)
        if kw["on_order"] is None
        else as_int64(kw["on_order"], "on_order", size=n, lo=0)
    )
    bo = (
        np.zeros(n, np.int64)
        if kw["backorders"] is None
        else as_int64(kw["backorders"], "backorders", size=n, lo=0)
    )
    for name, default in (
        ("unit_cost", network.sku_unit_cost),
        ("stockout_cost", network.sku_price),
    ):
        if kw[name] is None:
            # the network's figures; NaN (unknown) is an error only where it is needed
            params[name] = ("sku", np.asarray(default, dtype=np.float64))
        else:
            params[name] = _param(kw[name], name, n, nsku, integer=False, lo=0.0)
    budget = kw["budget"]
    if budget is not None:
        budget = _real(budget, "budget")
    if not isinstance(kw["transfers"], bool | np.bool_):
        raise DTypeError(
            f"expected True or False, got {type(kw['transfers']).__name__}", field="transfers"
        )
    per_km = _real(kw["transfer_cost_per_km"], "transfer_cost_per_km")
    cost = np.asarray(kw["transfer_cost"])
    if cost.dtype == object or cost.dtype.kind not in "iuf" or cost.dtype.kind == "b":
        raise DTypeError(f"expected numbers, got dtype {cost.dtype}", field="transfer_cost")
    nl = network.num_locations
    if cost.ndim not in (0, 2) or (cost.ndim == 2 and cost.shape != (nl, nl)):
        raise ValidationError(
            f"expected a scalar or a ({nl}, {nl}) location x location matrix, "
            f"got shape {cost.shape}",
            field="transfer_cost",
            code="wrong_shape",
        )
    bad_cost = ~np.isfinite(cost) | (cost < 0)
    if bad_cost.any():
        cost_row = int(np.argmax(bad_cost.reshape(-1))) // nl if cost.ndim else None
        raise ValidationError(
            "transfer costs must be finite and >= 0",
            field="transfer_cost",
            row=cost_row,
            code="out_of_range",
        )
    max_sources = kw["max_sources"]
    if max_sources is not None:
        max_sources = _integer(max_sources, "max_sources", lo=0)
    threads = _integer(kw["transfer_threads"], "transfer_threads", lo=1)
    cover_threshold = _real(kw["cover_threshold"], "cover_threshold", allow_inf=True)
    method = kw["forecast_method"]
    if method not in ("auto", "moving_average", "ses", "croston", "sba", "tsb"):
        raise ValidationError(
            f"unknown method {method!r}; expected one of 'auto', 'moving_average', 'ses', "
            "'croston', 'sba', 'tsb'",
            field="forecast_method",
            code="invalid_choice",
        )
    alpha = _real(kw["alpha"], "alpha")
    if not 0.0 < alpha <= 1.0:
        raise ValidationError(f"expected a value in (0, 1], got {alpha}", field="alpha")
    _check_policy(
        policy, n, _expand(params["lead_time"], sku), _expand(params["review_period"], sku)
    )

    history = mean = std = None
    if isinstance(demand, Forecast):
        if len(demand) != n:
            raise ValidationError(
                f"expected {n} rows (one per ledger position), got {len(demand)}",
                field="demand",
                code="length_mismatch",
            )
        mean, std = np.asarray(demand.mean), np.asarray(demand.std)
    else:
        if _is_frame(demand):
            demand = (
                sales_history(demand, ledger, freq=kw["freq"])
                if _is_long(demand)
                else (demand.to_numpy())
            )
        history = check_history(demand, compact=distributed)
        if history.shape[0] != n:
            raise ValidationError(
                f"expected {n} rows (one per ledger position), got {history.shape[0]}",
                field="demand",
                code="length_mismatch",
            )

    on_hand = np.asarray(ledger.on_hand)
    reserved = np.asarray(ledger.reserved)
    in_transit = np.asarray(ledger.in_transit)
    avail = ledger.available_all()
    # nothing reservable on any channel; one pass per channel (C is small)
    zero_avail = np.ones(n, dtype=np.bool_)
    for ch in range(avail.shape[1]):
        zero_avail &= avail[:, ch] <= 0
    columns = {
        "row": np.arange(n, dtype=np.int64),
        "sku": sku,
        "location": loc,
        "ip0": on_hand + in_transit + oo - reserved - bo,
        "free_stock": on_hand - reserved - bo,
        "free": np.maximum(on_hand - reserved, 0),
        "ledger_safety": np.array(ledger.safety_stock),
        "zero_available": np.asarray(zero_avail, dtype=np.bool_),
    }
    costs = None
    if kw["transfers"] and n:
        costs = transfer_cost_matrix(network.lat, network.lon, cost, per_km)
    settings = _Settings(
        transfers=bool(kw["transfers"]),
        costs=costs,
        max_sources=max_sources,
        transfer_threads=threads,
        cover_threshold=cover_threshold,
        forecast_method=method,
        alpha=alpha,
        budget=budget is not None,
    )
    plan_args = {
        "policy": policy,
        "on_hand": on_hand.copy(),
        "reserved": reserved,
        "in_transit": in_transit.copy(),
        "on_order": oo,
        "backorders": bo,
    }
    return _Part(columns, params, policy, history, mean, std), settings, plan_args


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns")


def _is_long(frame: Any) -> bool:
    cols = set(frame.columns)
    return {"sku", "location", "qty"} <= cols and bool({"date", "period"} & cols)
