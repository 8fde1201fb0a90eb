import numpy as np
import pytest

from pairclass.tournament import bracket_orders, run_bracket


@pytest.mark.parametrize("m", [2, 3, 4, 5, 8, 13, 17])
def test_rounds_and_matches(m):
    orders = bracket_orders(m, np.random.default_rng(0))
    assert len(orders) == int(np.ceil(np.log2(m)))
    calls = []

    def play(rows, a, b):
        calls.append(len(rows))
        return a < b

    cands = np.tile(np.arange(m), (4, 1))
    winner, runner_up = run_bracket(cands, play, orders)
    # Single elimination: m - 1 matches per item, and the strongest always wins.
    assert sum(calls) == 4 * (m - 1)
    assert winner.tolist() == [0] * 4
    assert (runner_up > 0).all()


def test_two_classes_one_match():
    calls = []

    def play(rows, a, b):
        calls.append((rows.copy(), a.copy(), b.copy()))
        return np.array([True, False])

    winner, runner_up = run_bracket(np.array([[3, 7], [3, 7]]), play, bracket_orders(2, np.random.default_rng(1)))
    assert len(calls) == 1
    assert sorted(winner.tolist() + runner_up.tolist()) == [3, 3, 7, 7]
    assert winner[0] != winner[1]


def test_transitive_strength_always_wins_for_every_item():
    rng = np.random.default_rng(2)
    strength = rng.random((50, 9))

    def play(rows, a, b):
        return strength[rows, a] > strength[rows, b]

    cands = np.tile(np.arange(9), (50, 1))
    winner, runner_up = run_bracket(cands, play, bracket_orders(9, rng))
    assert (winner == strength.argmax(1)).all()
    assert (strength[np.arange(50), runner_up] < strength[np.arange(50), winner]).all()


def test_per_item_candidates_are_respected():
    cands = np.array([[4, 2, 9], [1, 0, 5]])
    winner, _ = run_bracket(cands, lambda rows, a, b: a > b, bracket_orders(3, np.random.default_rng(0)))
    assert winner.tolist() == [9, 5]


def test_orders_depend_only_on_seed():
    a = bracket_orders(13, np.random.default_rng(7))
    b = bracket_orders(13, np.random.default_rng(7))
    assert all((x == y).all() for x, y in zip(a, b))
