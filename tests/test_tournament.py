import numpy as np
import pytest

from pairclass.tournament import bracket_orders, run_bracket, run_round_robin


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


def test_round_robin_matches_brute_force_copeland():
    rng = np.random.default_rng(5)
    n, C = 40, 6
    beats = rng.random((n, C, C)) < 0.5  # beats[r, a, b] for a < b: does a beat b for item r
    tiebreak = rng.random((n, C))
    cands = np.stack([rng.permutation(C) for _ in range(n)])

    def play(rows, a, b):
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        lo_wins = beats[rows, lo, hi]
        return lo_wins == (a < b)

    slot_tiebreak = np.take_along_axis(tiebreak, cands, axis=1)
    winner, runner_up = run_round_robin(cands, play, slot_tiebreak)
    for r in range(n):
        wins = {c: sum(beats[r, min(c, o), max(c, o)] == (c < o) for o in range(C) if o != c) for c in range(C)}
        ranked = sorted(range(C), key=lambda c: (-wins[c], -tiebreak[r, c]))
        assert (winner[r], runner_up[r]) == (ranked[0], ranked[1])


def test_a_class_that_beats_every_other_wins_both_tournaments():
    rng = np.random.default_rng(6)
    n, C = 30, 7
    champion = rng.integers(0, C, n)
    random_beats = rng.random((n, C, C)) < 0.5

    def play(rows, a, b):
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        a_wins = random_beats[rows, lo, hi] == (a < b)
        a_wins = np.where(a == champion[rows], True, a_wins)
        return np.where(b == champion[rows], False, a_wins)

    cands = np.tile(np.arange(C), (n, 1))
    assert run_round_robin(cands, play, np.zeros((n, C)))[0].tolist() == champion.tolist()
    assert run_bracket(cands, play, bracket_orders(C, rng))[0].tolist() == champion.tolist()
