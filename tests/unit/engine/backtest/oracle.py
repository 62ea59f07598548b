"""An independent, literal account simulation (shares and cash, one bar at a time) that
the vectorized engine is checked against. Orders are solved numerically, not with the
engine's closed form: buy or sell shares at the slipped price, pay the fee from cash, and
find the order size that leaves the position at its target weight."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq


def order_size(cash: float, shares: float, x: float, w: float, fee: float, slip: float) -> float:
    """Shares to trade (signed) so that after the order shares * x / equity == w."""

    def weight_gap(delta: float) -> float:
        fill = x * (1 + slip) if delta > 0 else x * (1 - slip)
        new_cash = cash - delta * fill - fee * abs(delta) * fill
        new_shares = shares + delta
        return new_shares * x - w * (new_cash + new_shares * x)

    equity = cash + shares * x
    if abs(weight_gap(0.0)) < 1e-15 * max(equity, 1.0):
        return 0.0
    span = 20 * abs(equity) / x + abs(shares)
    return float(brentq(weight_gap, -span, span, xtol=1e-15, rtol=1e-15, maxiter=500))


def account(
    close: np.ndarray,
    target: np.ndarray,
    *,
    fee: float = 0.0,
    slip: float = 0.0,
    open_: np.ndarray | None = None,
    rebalance: np.ndarray | None = None,
    cash: float = 1.0,
) -> tuple[np.ndarray, float, int]:
    """Equity at each close, total fees and the number of orders for one symbol.
    `target[t]` is decided at t's close and executes at t+1 (open if `open_` is given)."""
    shares, fees, orders = 0.0, 0.0, 0
    equity = np.empty(len(close))
    previous = 0.0
    for t in range(len(close)):
        w = 0.0 if t == 0 or np.isnan(target[t - 1]) else float(target[t - 1])
        scheduled = rebalance is not None and rebalance[t] and w != 0.0
        if t > 0 and (w != previous or scheduled):
            x = close[t] if open_ is None else open_[t]
            if w == 1.0 and shares == 0.0 and slip == 0.0:
                delta = cash / (x * (1 + fee))  # vectorbt from_signals: all in
            elif w == 0.0:
                delta = -shares
            else:
                delta = order_size(cash, shares, x, w, fee, slip)
            if delta != 0.0:
                fill = x * (1 + slip) if delta > 0 else x * (1 - slip)
                cash -= delta * fill + fee * abs(delta) * fill
                fees += fee * abs(delta) * fill
                shares += delta
                orders += 1
        previous = w
        equity[t] = cash + shares * close[t]
    return equity, fees, orders


def portfolio_account(
    close: np.ndarray,
    target: np.ndarray,
    *,
    fee: float = 0.0,
    slip: float = 0.0,
    cash: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Equity and total fees of one shared-cash account; `close` and `target` are
    (bars, assets). All assets rebalance to target weights whenever any target changes;
    the post-trade equity is found by root finding on the cash balance."""
    bars, assets = close.shape
    shares = np.zeros(assets)
    equity = np.empty(bars)
    fees = 0.0
    previous = np.zeros(assets)
    for t in range(bars):
        w = np.zeros(assets) if t == 0 else np.nan_to_num(target[t - 1])
        if t > 0 and np.any(w != previous):
            x = close[t]
            before = cash + shares @ x

            def balance(
                after: float,
                x: np.ndarray = x,
                w: np.ndarray = w,
                shares: np.ndarray = shares,
                cash: float = cash,
            ) -> float:
                delta = w * after / x - shares
                fill = np.where(delta > 0, x * (1 + slip), x * (1 - slip))
                new_cash = cash - delta @ fill - fee * np.abs(delta) @ fill
                return after - (new_cash + (w * after / x) @ x)

            after = float(brentq(balance, 1e-12, 2 * before, xtol=1e-15, rtol=1e-15))
            delta = w * after / x - shares
            fill = np.where(delta > 0, x * (1 + slip), x * (1 - slip))
            paid = fee * np.abs(delta) @ fill
            cash = cash - delta @ fill - paid
            fees += paid
            shares = shares + delta
        previous = w
        equity[t] = cash + shares @ close[t]
    return equity, fees
