"""Array-wide tournaments over each item's candidate classes: a knockout bracket or a round robin.

Pure numpy. Every item plays the same bracket shape: a round permutes the candidate slots (one
permutation for the whole array, so results do not depend on item order), pairs neighbours and gives
the odd slot a bye. Matches are decided by a caller-supplied function over whole arrays of items.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bracket_orders", "run_bracket", "run_round_robin"]


def bracket_orders(n_slots, rng):
    """One slot permutation per round: ``ceil(log2(n_slots))`` rounds.

    Examples
    --------
    >>> [len(o) for o in bracket_orders(5, np.random.default_rng(0))]
    [5, 3, 2]
    """
    orders = []
    while n_slots > 1:
        orders.append(rng.permutation(n_slots))
        n_slots = (n_slots + 1) // 2
    return orders


def run_bracket(candidates, play, orders):
    """Run the bracket for every row of ``candidates`` at once.

    Parameters
    ----------
    candidates : ndarray of shape (n_items, n_slots)
        Candidate class ids per item.
    play : callable
        ``play(rows, a, b) -> ndarray of bool``: for flat arrays of item rows and the two classes of
        each match, whether ``a`` beats ``b``.
    orders : list of ndarray
        Slot permutations from :func:`bracket_orders` for ``n_slots``.

    Returns
    -------
    winner : ndarray of shape (n_items,)
    runner_up : ndarray of shape (n_items,)
        The class beaten in the final, or -1 with a single candidate.

    Examples
    --------
    >>> cands = np.array([[0, 1, 2], [2, 1, 0]])
    >>> lowest_wins = lambda rows, a, b: a < b
    >>> winner, runner_up = run_bracket(cands, lowest_wins, bracket_orders(3, np.random.default_rng(0)))
    >>> winner.tolist()
    [0, 0]
    """
    alive = np.asarray(candidates)
    n_items = alive.shape[0]
    runner_up = np.full(n_items, -1, dtype=alive.dtype)
    for order in orders:
        alive = alive[:, order]
        n_match = alive.shape[1] // 2
        a = alive[:, 0 : 2 * n_match : 2]
        b = alive[:, 1 : 2 * n_match : 2]
        rows = np.repeat(np.arange(n_items), n_match)
        a_wins = np.asarray(play(rows, a.ravel(), b.ravel())).reshape(n_items, n_match)
        winners = np.where(a_wins, a, b)
        runner_up = np.where(a_wins, b, a)[:, 0]
        if alive.shape[1] % 2:
            winners = np.concatenate([winners, alive[:, -1:]], axis=1)
        alive = winners
    return alive[:, 0], runner_up


def run_round_robin(candidates, play, tiebreak):
    """Copeland round robin: every item's candidates each play all the others; most wins takes it.

    Parameters
    ----------
    candidates : ndarray of shape (n_items, n_slots)
        Candidate class ids per item.
    play : callable
        As in :func:`run_bracket`.
    tiebreak : ndarray of shape (n_items, n_slots)
        Per slot, the score that orders classes with equal wins (higher first), e.g. the full cosine.

    Returns
    -------
    winner : ndarray of shape (n_items,)
    runner_up : ndarray of shape (n_items,)
        Second by wins (then ``tiebreak``), or -1 with a single candidate.

    Examples
    --------
    A cycle (0 beats 1, 1 beats 2, 2 beats 0) is a three-way tie on wins, so the tiebreak decides:

    >>> beats = {(0, 1), (1, 2), (2, 0)}
    >>> play = lambda rows, a, b: np.array([(x, y) in beats for x, y in zip(a, b)])
    >>> winner, runner_up = run_round_robin(np.array([[0, 1, 2]]), play, np.array([[0.1, 0.3, 0.2]]))
    >>> winner.tolist(), runner_up.tolist()
    ([1], [2])
    """
    cands = np.asarray(candidates)
    n_items, n_slots = cands.shape
    i, j = np.triu_indices(n_slots, 1)
    rows = np.repeat(np.arange(n_items), i.size)
    i_wins = np.asarray(play(rows, cands[:, i].ravel(), cands[:, j].ravel())).reshape(n_items, i.size)
    wins = np.zeros((n_items, n_slots))
    np.add.at(wins.T, i, i_wins.T)
    np.add.at(wins.T, j, ~i_wins.T)
    # lexsort's last key is the primary one: most wins, then the higher tiebreak.
    order = np.lexsort((-np.asarray(tiebreak), -wins), axis=1)
    every = np.arange(n_items)
    runner_up = cands[every, order[:, 1]] if n_slots > 1 else np.full(n_items, -1, dtype=cands.dtype)
    return cands[every, order[:, 0]], runner_up
