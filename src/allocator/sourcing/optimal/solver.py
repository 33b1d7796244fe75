"""The ``optimal`` sourcing method: a batch of orders sourced jointly, with a proven
lower bound.

Pipeline (see ``docs/optimal.md``):

1. greedy plan, repaired to the pick-up rule and the stock the channels share (the
   warm start; the plan is never worse than it);
2. flat model over every order's candidates (vectorised), with the pick-up orders'
   store units fixed and joint rows for shared stock;
3. independent components: orders are coupled only through stock or pick capacity
   that their combined demand could exhaust;
4. Lagrangian relaxation of those shared constraints; every order's subproblem is
   solved exactly by enumeration over line subsets (numba), giving a lower bound per
   component; prices are updated by projected subgradient steps;
5. primal plans: order-by-order construction at the current prices, then local
   search (each order re-sourced against the others at true costs);
6. the LP relaxation (HiGHS) of each unproven component within a size limit: a
   second bound, and its duals restart the prices;
7. exact MIP (OR-Tools SCIP, hinted with the incumbent, a node budget) of the small
   unproven components, and of neighbourhoods of the large ones (the orders drawing
   on one binding constraint, the rest of the plan fixed).

Steps 4–7 repeat in rounds until the gap target is met (GAP_MET, or OPTIMAL when
every component is proven), a full round improves neither plan nor bound (STALLED),
or the deadline passes (TIME_LIMIT). Every budget is counted in iterations, nodes
and orders, never in seconds, so the same input and seed give the same plan
whenever the deadline did not cut the search.

Each component keeps its best plan and its best bound, so the result is never
costlier than the warm start (greedy's plan whenever that follows both rules) and
the bound is the sum of component bounds.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from allocator._kernels import optimal as K
from allocator.exceptions import ValidationError
from allocator.sourcing.greedy import solve_greedy
from allocator.sourcing.optimal.bounds import lp_bound
from allocator.sourcing.optimal.mip import solve_mip
from allocator.sourcing.optimal.model import Model, build_model, plan_to_x
from allocator.sourcing.orders import Service
from allocator.sourcing.plan import PlanStatus, SourcingPlan, build_plan
from allocator.sourcing.problem import SourcingProblem

__all__ = ["solve_optimal"]

logger = logging.getLogger("allocator")

#: Components with at most this many usable entries go to the exact MIP when unproven.
MIP_MAX_ENTRIES = 4_000
#: Branch-and-bound nodes per exact MIP of a component above MIP_FULL_ENTRIES usable
#: entries (the deterministic budget: the root node); smaller ones are solved to the end.
MIP_NODES = 1
MIP_FULL_ENTRIES = 600
#: Components with at most this many usable entries get the LP bound.
LP_MAX_ENTRIES = 150_000
#: Lagrangian iterations per round.
LAGRANGE_ITERATIONS = 40
#: Primal constructions on the first iterations, then every this many.
CONSTRUCT_EVERY = 5
#: Neighbourhoods re-optimised by MIP per round in each large component, their
#: size in usable entries and their node budget.
NEIGHBOURHOODS = 4
NEIGHBOURHOOD_ENTRIES = 1_500
NEIGHBOURHOOD_NODES = 1
#: Rounds in a row without progress after which the search stops as STALLED.
STALL_ROUNDS = 2
#: Share of the time limit kept for assembling the plan.
RESERVE = 0.03
#: Relative tolerance under which a component counts as proven optimal.
PROVEN = 1e-7


def solve_optimal(
    problem: SourcingProblem,
    *,
    time_limit: float = 10.0,
    gap: float = 0.001,
    seed: int = 0,
    opportunity_cost: Any = None,
    future: Any = None,
) -> SourcingPlan:
    """Source a batch jointly at least cost, with a lower bound and gap.

    Parameters
    ----------
    problem
        The prepared call (see :func:`~allocator.sourcing.source`).
    time_limit
        Wall-clock seconds for the whole method, greedy warm start included.
    gap
        Stop once ``(objective − bound) / objective`` is at most this.
    seed
        Seeds the order sequences of the construction and the MIP solver.
    opportunity_cost
        Optional per-unit cost of taking stock from a position: a 1-D array over
        ledger position rows, or a ``(num_locations, num_skus)`` array. Non-negative.
    future
        Future-aware sourcing: a :class:`~allocator.sourcing.ForwardModel` (its
        prices are refreshed on its schedule) or
        :class:`~allocator.sourcing.FuturePrices`; their ``opportunity_cost`` is
        added to ``opportunity_cost``.

    Returns
    -------
    SourcingPlan
        ``method="optimal"``; ``status`` OPTIMAL (proven), GAP_MET (gap target met),
        STALLED (a full round improved neither plan nor bound), TIME_LIMIT (stopped
        by the time limit with a better plan than greedy) or TIME_LIMIT_GREEDY
        (stopped before beating greedy: greedy's plan); ``bound`` (also
        ``lower_bound``, the better of the Lagrangian and LP bounds), ``gap``,
        ``build_s``, ``solve_s`` and per-order ``baseline_cost`` (greedy's cost)
        for the explanations.

    Notes
    -----
    With ``x`` the units per (order line, candidate location), the problem is::

        min Σ_o cost_o(x)  s.t.  X_c(s, l) = Σ_{o,j: sku s, channel c} x_{o,j,l} ≤ available_c(s, l)
                                 Σ_c max(0, X_c(s, l) − f_c) ≤ S(s, l)
                                 Σ_{o,j} x_{o,j,l} ≤ capacity_l
                                 |{l : x_{o,·,l} > 0}| ≤ max_splits + 1

    with ``cost_o`` of :func:`~allocator.sourcing.plan_costs` plus the opportunity
    cost, ``f_c = max(0, fence_c − reserved_c)`` and the free shared pool
    ``S = max(0, on_hand − reserved − safety − Σ_c f_c)`` (the ledger then accepts
    every order's reservations). Pick-up orders first take, by priority then
    arrival, what their pick-up store has (within its pick capacity); those units are
    fixed and only the rest is sourced elsewhere, as transfers. The Lagrangian bound
    for prices ``λ ≥ 0`` (stock rows) and ``μ ≥ 0`` (capacity) is
    ``L(λ, μ) = Σ_o (fixed_o + min_{patterns} cost_o^{λ,μ}) − Σ λ·rhs − Σ μ·capacity``,
    where a pattern sends each line whole to one location (or leaves it unfilled)
    and units are priced ``m_l per_unit + ship + opp`` plus the prices of their rows.
    """
    t_start = time.perf_counter()
    time_limit = _positive(time_limit, "time_limit")
    gap = _fraction(gap)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValidationError(f"expected an int, got {seed!r}", field="seed", code="wrong_dtype")
    # keep a little time to assemble the plan
    deadline = t_start + time_limit * (1.0 - RESERVE)
    greedy = solve_greedy(problem)
    if future is not None:
        opportunity_cost = _with_future(problem, opportunity_cost, future)
    model = build_model(problem, opportunity_cost)
    run = _Run(model, int(seed), problem.sequence)
    # greedy's plan within the model: its pick-up store rows must be the pick-up
    # rule's, and it must fit the shared stock; what does not fit is dropped
    x_greedy = plan_to_x(model, greedy)
    store = model.e_store
    x_start, dropped = run.repair(np.where(store, 0, x_greedy))
    greedy_ok = dropped == 0 and bool(np.array_equal(x_greedy[store], model.e_fix[store]))
    if not greedy_ok:
        logger.info(
            "optimal: greedy's plan breaks the pick-up rule or over-promises shared stock; "
            "%d units dropped from the warm start",
            dropped,
        )
    run.start(x_start)
    build_s = time.perf_counter() - t_start
    logger.info(
        "optimal: %d orders, %d candidates, %d entries, %d components; greedy %.2f",
        model.num_orders,
        model.c_loc.shape[0],
        model.num_entries,
        run.ncomp,
        run.total_ub(),
    )
    outcome = run.solve(deadline, gap)
    solve_s = time.perf_counter() - t_start - build_s
    return _plan(problem, model, run, greedy, x_start, greedy_ok, gap, outcome, build_s, solve_s)


def _with_future(problem: SourcingProblem, opportunity_cost: Any, future: Any) -> Any:
    """``opportunity_cost`` plus the forward model's prices (``(locations, skus)``)."""
    from allocator.sourcing.future import ForwardModel, FuturePrices

    if isinstance(future, ForwardModel):
        prices = future.prices(problem.ledger, skus=problem.skus)
    elif isinstance(future, FuturePrices):
        prices = future
    else:
        raise ValidationError(
            f"expected a ForwardModel or FuturePrices, got {type(future).__name__}",
            field="future",
            code="wrong_dtype",
        )
    net = problem.network
    if prices.opportunity_cost.shape != (net.num_locations, net.num_skus):
        raise ValidationError(
            "the future prices were made for another network",
            field="future",
            code="network_mismatch",
        )
    if opportunity_cost is None:
        return prices.opportunity_cost
    extra = np.asarray(opportunity_cost, dtype=np.float64)
    if extra.ndim == 1:
        full = np.zeros((net.num_locations, net.num_skus))
        ledger = problem.ledger
        rows = np.arange(min(extra.shape[0], ledger.num_positions))
        full[ledger.position_location[rows], ledger.position_sku[rows]] = extra[rows]
        extra = full
    return prices.opportunity_cost + extra


def _positive(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValidationError(f"expected a number, got {value!r}", field=field, code="wrong_dtype")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValidationError(
            f"expected a finite positive number, got {v}", field=field, code="out_of_range"
        )
    return v


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValidationError(f"expected a number, got {value!r}", field="gap", code="wrong_dtype")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValidationError(
            f"expected a finite number >= 0, got {v}", field="gap", code="out_of_range"
        )
    return v


class _Run:
    """Working state of one solve: scratch arrays, the incumbent and bounds per
    component."""

    def __init__(self, model: Model, seed: int, sequence: np.ndarray) -> None:
        m = model
        self.m = m
        self.seq = np.asarray(sequence, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        n = m.num_orders
        max_lines = int(np.diff(m.o_ptr).max()) if n else 1
        max_cands = int(np.diff(m.c_ptr).max()) if n else 1
        self.scratch = K.Scratch.allocate(max_lines, max_cands, m.num_entries)
        self.p_true = m.true_prices()
        usable = m.e_con >= 0
        q = m.l_qty[m.e_line[usable]]
        con_dem = m.rows_of(np.bincount(m.e_con[usable], weights=q, minlength=m.ncon))
        loc_dem = np.bincount(m.e_loc[usable], weights=q, minlength=m.num_locations)
        self.con_bind = con_dem > m.s_rhs
        self.loc_bind = loc_dem > m.cap
        self.label = np.empty(n, dtype=np.int64)
        self.ncomp = int(K.component_labels(m.kernel, self.con_bind, self.loc_bind, self.label))
        # component of each binding constraint
        self.con_comp = np.full(m.s_rhs.shape[0], -1, dtype=np.int64)
        sel = usable.copy()
        sel[usable] = self.con_bind[m.e_con[usable]]
        self.con_comp[m.e_con[sel]] = self.label[m.e_order[sel]]
        # joint rows: the component of any order drawing on one of their members
        any_comp = np.full(m.ncon, -1, dtype=np.int64)
        any_comp[m.e_con[usable]] = self.label[m.e_order[usable]]
        sel = self.con_bind[m.jm_row] & (any_comp[m.jm_con] >= 0)
        self.con_comp[m.jm_row[sel]] = any_comp[m.jm_con[sel]]
        self.loc_comp = np.full(m.num_locations, -1, dtype=np.int64)
        sel = usable & self.loc_bind[m.e_loc]
        self.loc_comp[m.e_loc[sel]] = self.label[m.e_order[sel]]
        self.bc = np.flatnonzero(self.con_bind)
        self.bl = np.flatnonzero(self.loc_bind)
        self.e_comp = self.label[m.e_order]
        self.comp_entries = np.bincount(self.e_comp[usable], minlength=self.ncomp)
        self.comp_lb = np.full(self.ncomp, -np.inf)
        self.comp_exact = np.zeros(self.ncomp, dtype=np.bool_)
        self.mult = K.Multipliers(lam=np.zeros(m.s_rhs.shape[0]), mu=np.zeros(m.num_locations))
        self.iterations = 0
        self.theta = np.full(self.ncomp, 1.0)
        self.stale = np.zeros(self.ncomp, dtype=np.int64)
        self.converged = False
        self.lp_done = False
        self.lp_better = 0
        self.mip_tried = np.zeros(self.ncomp, dtype=np.bool_)

    @property
    def lam(self) -> np.ndarray:
        """Prices of the stock rows (updated in place)."""
        return self.mult.lam

    @property
    def mu(self) -> np.ndarray:
        """Prices of the location capacities (updated in place)."""
        return self.mult.mu

    # -- incumbent --------------------------------------------------------------
    def start(self, x: np.ndarray) -> None:
        self.x = x.copy()
        self.val = self.costs(x)
        self.start_val = self.val.copy()
        self.comp_ub = np.bincount(self.label, weights=self.val, minlength=self.ncomp)

    def costs(self, x: np.ndarray) -> np.ndarray:
        """True cost of every order under ``x`` (fixed pick-up parts included)."""
        m = self.m
        out = np.zeros(m.num_orders)
        K.order_costs(m.kernel, self.p_true, x, out)
        return out

    def repair(self, x_in: np.ndarray) -> tuple[np.ndarray, int]:
        """A feasible plan keeping what fits of ``x_in`` (orders in sequence order) and
        the number of units dropped."""
        m = self.m
        x = np.zeros(m.num_entries, dtype=np.int64)
        dropped = K.repair(self.seq, m.kernel, self.empty_state(), x_in, x)
        return x, int(dropped)

    def total_ub(self) -> float:
        return float(self.comp_ub.sum())

    def total_lb(self) -> float:
        return float(np.minimum(self.comp_lb, self.comp_ub).sum())

    def total_gap(self) -> float:
        ub = self.total_ub()
        return (ub - self.total_lb()) / max(abs(ub), 1e-9)

    def proven(self) -> np.ndarray:
        tol = PROVEN * np.maximum(np.abs(self.comp_ub), 1.0)
        return self.comp_exact | (self.comp_lb >= self.comp_ub - tol)

    def adopt(self, x: np.ndarray, val: np.ndarray) -> int:
        """Take the components where ``x`` is cheaper; returns how many."""
        comp = np.bincount(self.label, weights=val, minlength=self.ncomp)
        better = comp < self.comp_ub - 1e-9 * np.maximum(np.abs(self.comp_ub), 1.0)
        if not better.any():
            return 0
        e_sel = better[self.e_comp]
        self.x[e_sel] = x[e_sel]
        o_sel = better[self.label]
        self.val[o_sel] = val[o_sel]
        self.comp_ub[better] = comp[better]
        return int(better.sum())

    def state(self, x: np.ndarray) -> K.State:
        """Stock and capacity that plan ``x`` leaves."""
        m = self.m
        con, loc = m.usage(x)
        return K.State(rem=m.s_rhs - con, cap_rem=m.cap - loc)

    def empty_state(self) -> K.State:
        """Stock and capacity of the empty plan (fresh arrays)."""
        return K.State(rem=self.m.s_rhs.copy(), cap_rem=self.m.cap.copy())

    # -- kernels ----------------------------------------------------------------
    def construct(self, p: np.ndarray, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.m
        plan = K.Plan(x=np.zeros(m.num_entries, dtype=np.int64), val=np.zeros(m.num_orders))
        st = self.empty_state()
        K.construct(seq, m.kernel, p, self.p_true, st, plan, self.scratch)
        self.improve(plan, st, seq)
        return plan.x, plan.val

    def improve(self, plan: K.Plan, st: K.State, seq: np.ndarray, passes: int = 4) -> float:
        """Local search on ``plan`` and its state ``st`` (both updated in place)."""
        return float(K.improve(seq, passes, self.m.kernel, self.p_true, st, plan, self.scratch))

    def lagrange(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.m
        out = K.Subproblems(
            value=np.empty(m.num_orders),
            use_con=np.zeros(m.num_rows, dtype=np.int64),
            use_loc=np.zeros(m.num_locations, dtype=np.int64),
            line_choice=np.empty(m.l_qty.shape[0], dtype=np.int64),
        )
        K.lagrange_pass(m.kernel, p, out, self.scratch)
        bc, bl = self.bc, self.bl
        value = np.bincount(self.label, weights=out.value, minlength=self.ncomp)
        value -= np.bincount(
            self.con_comp[bc], weights=self.lam[bc] * self.m.s_rhs[bc], minlength=self.ncomp
        )
        value -= np.bincount(
            self.loc_comp[bl], weights=self.mu[bl] * self.m.cap[bl], minlength=self.ncomp
        )
        return value, out.use_con, out.use_loc

    def prices(self) -> np.ndarray:
        p = np.empty(self.m.num_entries)
        K.prices(self.m.kernel, self.mult, p)
        return p

    # -- phases -------------------------------------------------------------------
    def solve(self, deadline: float, gap: float) -> str:
        """Rounds of prices, LP bound, exact and neighbourhood MIPs until the gap
        target (``"gap"``, or ``"proven"``), a round without progress (``"stalled"``)
        or the deadline (``"time"``)."""
        m = self.m
        seq = np.arange(m.num_orders, dtype=np.int64)
        plan = K.Plan(x=self.x.copy(), val=self.val.copy())
        self.improve(plan, self.state(self.x), seq)
        self.adopt(plan.x, plan.val)
        stalled = 0
        rounds = 0
        while True:
            before = (self.total_ub(), self.total_lb())
            for phase in (self.lagrange_block, self.lp_bounds, self.exact, self.neighbourhoods):
                cut = phase(deadline, rounds)
                done = self.done(gap)
                if done == "gap" and not cut:
                    # small components are proven by their MIP at little cost
                    self.exact(deadline, rounds, most=MIP_FULL_ENTRIES)
                    done = self.done(gap)
                if done:
                    return done
                if cut or time.perf_counter() >= deadline:
                    return "time"
            rounds += 1
            ub, lb = self.total_ub(), self.total_lb()
            tol = 1e-9 * max(abs(ub), 1.0)
            progress = ub < before[0] - tol or lb > before[1] + tol
            stalled = 0 if progress else stalled + 1
            if stalled >= STALL_ROUNDS:
                return "stalled"

    def done(self, gap: float) -> str:
        """``"proven"`` or ``"gap"`` when the search may stop, else ``""``."""
        if bool(self.proven().all()):
            return "proven"
        if self.total_gap() <= gap:
            return "gap"
        return ""

    def lagrange_block(self, deadline: float, rounds: int) -> bool:
        """:data:`LAGRANGE_ITERATIONS` price iterations (projected subgradient, Polyak
        step per component), with primal constructions on the first three and every
        :data:`CONSTRUCT_EVERY` th. Resumable. True when cut by the deadline."""
        m = self.m
        if self.converged:
            return False
        theta, stale = self.theta, self.stale
        bc, bl = self.bc, self.bl
        rhs_c, rhs_l = m.s_rhs[bc].astype(np.float64), m.cap[bl].astype(np.float64)
        cc, cl = self.con_comp[bc], self.loc_comp[bl]
        seq = np.arange(m.num_orders, dtype=np.int64)
        for _ in range(LAGRANGE_ITERATIONS):
            if time.perf_counter() >= deadline:
                return True
            p = self.prices()
            value, use_con, use_loc = self.lagrange(p)
            self.iterations += 1
            it = self.iterations
            improved = value > self.comp_lb + 1e-9 * np.maximum(np.abs(value), 1.0)
            stale[:] = np.where(improved, 0, stale + 1)
            self.comp_lb = np.maximum(self.comp_lb, value)
            if it == 1:
                # components without binding constraints are solved by their
                # subproblems alone: the bound is exact
                free = np.bincount(cc, minlength=self.ncomp) + np.bincount(cl, minlength=self.ncomp)
                self.comp_exact |= (free == 0) & (self.comp_lb >= self.comp_ub - 1e-6)
            if it <= 3 or it % CONSTRUCT_EVERY == 0:
                order = seq if it == 1 else self.rng.permutation(m.num_orders)
                xc, vc = self.construct(p, order)
                self.adopt(xc, vc)
            open_ = ~self.proven()
            if not open_.any():
                return False
            # projected subgradient, Polyak step per component
            g_c = use_con[bc] - rhs_c
            g_l = use_loc[bl] - rhs_l
            g_c = np.where((self.lam[bc] > 0) | (g_c > 0), g_c, 0.0)
            g_l = np.where((self.mu[bl] > 0) | (g_l > 0), g_l, 0.0)
            norm = np.bincount(cc, weights=g_c * g_c, minlength=self.ncomp) + np.bincount(
                cl, weights=g_l * g_l, minlength=self.ncomp
            )
            theta[:] = np.where(stale >= 6, theta * 0.5, theta)
            stale[:] = np.where(stale >= 6, 0, stale)
            target = np.maximum(self.comp_ub - value, 0.0)
            step = np.where(open_ & (norm > 0), theta * target / np.maximum(norm, 1e-12), 0.0)
            if not (step > 0).any() or theta.max() < 1e-4:
                self.converged = True
                return False
            self.lam[bc] = np.maximum(0.0, self.lam[bc] + step[cc] * g_c)
            self.mu[bl] = np.maximum(0.0, self.mu[bl] + step[cl] * g_l)
        return False

    def _members(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        e_order = np.argsort(self.e_comp, kind="stable")
        e_start = np.searchsorted(self.e_comp[e_order], np.arange(self.ncomp + 1))
        o_order = np.argsort(self.label, kind="stable")
        o_start = np.searchsorted(self.label[o_order], np.arange(self.ncomp + 1))
        return e_order, e_start, o_order, o_start

    def lp_bounds(self, deadline: float, rounds: int) -> bool:
        """First round only: the LP bound of every unproven component of at most
        :data:`LP_MAX_ENTRIES` usable entries; its duals restart the prices."""
        if rounds > 0 or self.lp_done:
            return False
        self.lp_done = True
        comps = np.flatnonzero(~self.proven() & (self.comp_entries <= LP_MAX_ENTRIES))
        if comps.shape[0] == 0:
            return False
        e_order, e_start, o_order, o_start = self._members()
        restart = False
        for c in comps.tolist():
            if time.perf_counter() >= deadline:
                return True
            entries = np.sort(e_order[e_start[c] : e_start[c + 1]])
            orders = np.sort(o_order[o_start[c] : o_start[c + 1]])
            res = lp_bound(self.m, entries, orders, self.con_bind, self.loc_bind)
            if res.bound > self.comp_lb[c]:
                self.comp_lb[c] = res.bound
                self.lp_better += 1
            self.lam[res.stock_ids] = res.stock_price
            self.mu[res.cap_ids] = res.cap_price
            restart = True
        if restart and self.converged:
            # the duals are a new starting point for the subgradient steps
            self.converged = False
            self.theta[:] = 0.5
            self.stale[:] = 0
        return False

    def exact(self, deadline: float, rounds: int, most: int = MIP_MAX_ENTRIES) -> bool:
        """Exact MIP (node budget :data:`MIP_NODES`) of the unproven components of
        at most ``most`` usable entries, largest gap first, once each."""
        m = self.m
        open_ = ~self.proven() & (self.comp_entries <= most) & ~self.mip_tried
        if not open_.any():
            return False
        comps = np.flatnonzero(open_)
        comps = comps[np.argsort(-(self.comp_ub[comps] - self.comp_lb[comps]), kind="stable")]
        e_order, e_start, o_order, o_start = self._members()
        for c in comps.tolist():
            left = deadline - time.perf_counter()
            if left <= 0.01:
                return True
            self.mip_tried[c] = True
            entries = np.sort(e_order[e_start[c] : e_start[c + 1]])
            orders = np.sort(o_order[o_start[c] : o_start[c + 1]])
            res = solve_mip(
                m,
                entries,
                orders,
                self.con_bind,
                self.loc_bind,
                self.x[entries],
                left,
                self.seed,
                node_limit=None if self.comp_entries[c] <= MIP_FULL_ENTRIES else MIP_NODES,
            )
            if res.bound > self.comp_lb[c]:
                self.comp_lb[c] = res.bound
            if self.take_mip(res.x, entries, orders) and res.optimal:
                if self.comp_ub[c] <= res.objective + 1e-6 * max(1.0, abs(res.objective)):
                    self.comp_exact[c] = True
                    self.comp_lb[c] = max(self.comp_lb[c], self.comp_ub[c])
            if time.perf_counter() >= deadline:
                return True
        return False

    def take_mip(self, xs: np.ndarray | None, entries: np.ndarray, orders: np.ndarray) -> bool:
        """Adopt a MIP's plan ``xs`` of ``entries`` (orders ``orders``) where it is
        feasible and cheaper; True when it was feasible."""
        if xs is None:
            return False
        x = self.x.copy()
        x[entries] = xs
        if not _feasible(self.m, x):
            return False
        val = self.val.copy()
        val[orders] = self.costs(x)[orders]
        self.adopt(x, val)
        return True

    def neighbourhoods(self, deadline: float, rounds: int) -> bool:
        """Re-optimise :data:`NEIGHBOURHOODS` neighbourhoods of each unproven large
        component by MIP: the orders that draw on one binding constraint (drawn with
        the seeded generator, up to :data:`NEIGHBOURHOOD_ENTRIES` usable entries),
        against what the rest of the plan leaves."""
        m = self.m
        big = np.flatnonzero(~self.proven() & (self.comp_entries > MIP_MAX_ENTRIES))
        if big.shape[0] == 0:
            return False
        usable = m.e_con >= 0
        every_con = np.ones(m.num_rows, dtype=np.bool_)
        every_loc = m.cap < K.BIG
        for c in big.tolist():
            cons = self.bc[self.con_comp[self.bc] == c]
            locs = self.bl[self.loc_comp[self.bl] == c]
            if cons.shape[0] + locs.shape[0] == 0:
                continue
            for _ in range(NEIGHBOURHOODS):
                if time.perf_counter() >= deadline:
                    return True
                pick = int(self.rng.integers(cons.shape[0] + locs.shape[0]))
                if pick < cons.shape[0]:
                    row = int(cons[pick])
                    on = usable.copy()
                    on[usable] = m.e_con[usable] == row
                    if row >= m.ncon:
                        members = m.jm_con[m.jm_row == row]
                        on[usable] |= np.isin(m.e_con[usable], members)
                else:
                    on = usable & (m.e_loc == int(locs[pick - cons.shape[0]]))
                orders = np.unique(m.e_order[on])
                if orders.shape[0] == 0:
                    continue
                size = np.bincount(m.e_order[usable], minlength=m.num_orders)[orders]
                perm = self.rng.permutation(orders.shape[0])
                orders, size = orders[perm], size[perm]
                keep = np.cumsum(size) <= NEIGHBOURHOOD_ENTRIES
                keep[0] = True
                orders = np.sort(orders[keep])
                sel = np.isin(m.e_order, orders)
                entries = np.flatnonzero(sel)
                # what the other orders leave
                x_rest = np.where(sel, 0, self.x)
                con_used, loc_used = m.usage(x_rest)
                rhs = m.s_rhs - con_used
                cap = m.cap - loc_used
                left = deadline - time.perf_counter()
                if left <= 0.01:
                    return True
                res = solve_mip(
                    m,
                    entries,
                    orders,
                    every_con,
                    every_loc,
                    self.x[entries],
                    left,
                    self.seed,
                    node_limit=NEIGHBOURHOOD_NODES,
                    s_rhs=rhs,
                    cap=cap,
                )
                self.take_mip(res.x, entries, orders)
        return False


def _feasible(m: Model, x: np.ndarray) -> bool:
    if (x < 0).any() or (x > m.e_ub).any() or (x[m.e_con < 0] != 0).any():
        return False
    con, loc = m.usage(x)
    if (con > m.s_rhs).any() or (loc > m.cap).any():
        return False
    got = np.bincount(m.e_line, weights=x, minlength=m.l_qty.shape[0])
    if (got > m.l_qty).any():
        return False
    pk = np.zeros(m.c_loc.shape[0], dtype=np.int64)
    np.maximum.at(pk, m.e_cand, (x > 0).astype(np.int64))
    c_order = np.repeat(np.arange(m.num_orders), np.diff(m.c_ptr))
    npk = np.bincount(c_order, weights=pk, minlength=m.num_orders) + m.o_open
    return bool((npk <= m.max_locs).all())


def _plan(
    problem: SourcingProblem,
    m: Model,
    run: _Run,
    greedy: SourcingPlan,
    x_start: np.ndarray,
    greedy_ok: bool,
    gap: float,
    outcome: str,
    build_s: float,
    solve_s: float,
) -> SourcingPlan:
    x = run.x
    if not _feasible(m, x) or run.total_ub() > float(run.start_val.sum()) + 1e-6:
        logger.warning("optimal: falling back to the warm start")
        x = x_start
    rows = np.flatnonzero(x > 0)
    nlines = m.l_qty.shape[0]
    got = np.bincount(m.e_line[rows], weights=x[rows], minlength=nlines).astype(np.int64)
    line_unfilled = m.l_qty - got
    # the pick-up store's fixed units come first in each order
    rows = np.concatenate([np.flatnonzero(m.e_fix > 0), rows])
    qty = np.where(m.e_fix > 0, m.e_fix, x)[rows]
    orders, net = problem.orders, problem.network
    nch = net.num_channels
    line_reason = np.zeros(nlines, dtype=np.int64)
    ncand = np.diff(m.c_ptr)
    reasons = K.ReasonData(
        l_sku=problem.line_sku,
        o_chan=orders.channel,
        o_same_day=orders.service == Service.SAME_DAY,
        o_unavailable=(orders.service == Service.PICKUP) & (ncand == 0),
        s_ptr=problem.sku_ptr,
        s_loc=problem.sku_loc,
        ok=problem.locations.ok,
        nch=nch,
    )
    K.unfilled_reasons(m.kernel, reasons, run.state(x), x, line_reason)
    lb = run.total_lb()
    ub = run.total_ub()
    same_as_greedy = greedy_ok and bool(np.array_equal(x, x_start))
    rel = (ub - lb) / max(abs(ub), 1e-9)
    if run.proven().all():
        status = PlanStatus.OPTIMAL
        lb = max(lb, ub - PROVEN * max(abs(ub), 1.0))
    elif rel <= gap:
        status = PlanStatus.GAP_MET
    elif outcome == "time":
        status = PlanStatus.TIME_LIMIT_GREEDY if same_as_greedy else PlanStatus.TIME_LIMIT
    else:
        status = PlanStatus.STALLED
    plan = build_plan(
        net,
        orders,
        problem.costs,
        method="optimal",
        order=m.e_order[rows],
        line=m.e_line[rows],
        location=m.e_loc[rows],
        qty=qty,
        transfer=m.c_transfer[m.e_cand[rows]],
        line_unfilled=line_unfilled,
        line_reason=line_reason.astype(np.int8),
        status=status,
        bound=min(lb, ub),
        runtime_s=build_s + solve_s,
        build_s=build_s,
        solve_s=solve_s,
        baseline_cost=np.asarray(greedy.cost, dtype=np.float64),
        opportunity=m.e_opp[rows],
    )
    logger.info(
        "optimal: %s, objective %.2f, bound %.2f, gap %.3f%%, greedy %.2f, %d iterations, "
        "LP bound better in %d components",
        status.slug,
        plan.objective,
        plan.bound,
        100 * plan.gap,
        greedy.objective,
        run.iterations,
        run.lp_better,
    )
    return plan
