"""buy_and_hold: the same weight on every bar of every symbol."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("weight", [1.0, 0.5, -1.0])
def test_target_is_the_weight_on_every_bar(bars, evaluate, weight) -> None:
    targets = evaluate(bars, "buy_and_hold", {"weight": weight})
    np.testing.assert_array_equal(targets, np.full(bars.height, weight))


def test_default_weight_is_all_in(bars, evaluate) -> None:
    assert set(evaluate(bars, "buy_and_hold").tolist()) == {1.0}
