import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass.center import balanced_center, centred_class_embeddings
from pairclass.classify import l2_normalize
from pairclass.cli import app
from pairclass.errors import InputError

from conftest import clustered


def reference_center(X, T):
    """The definition, one class at a time."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    pred = (Xn @ T.T).argmax(axis=1)
    means = [Xn[pred == c].mean(axis=0) for c in range(len(T)) if (pred == c).any()]
    centred = Xn - np.mean(means, axis=0)
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


def data(seed=0):
    X, T, _ = clustered(n_per_class=250, n_classes=4, dim=12, seed=seed)
    return X.astype(np.float64), l2_normalize(T.astype(np.float64))


def test_balanced_center_matches_the_definition():
    X, T = data()
    # The class means come from the exact statistics, whose values are rounded to 2**-20.
    np.testing.assert_allclose(balanced_center(X, T), reference_center(X, T), atol=1e-6)


def test_a_dominant_class_does_not_move_the_centre():
    X, T = data(1)
    pred = (l2_normalize(X) @ T.T).argmax(axis=1)
    flood = np.flatnonzero(pred == 0)
    skewed = np.vstack([X, np.repeat(X[flood], 9, axis=0)])  # class 0 now makes up most of the batch
    np.testing.assert_allclose(balanced_center(skewed, T)[: len(X)], balanced_center(X, T), atol=1e-6)
    # ...whereas the plain batch mean would move.
    batch = l2_normalize(X) - l2_normalize(skewed).mean(axis=0)
    assert not np.allclose(l2_normalize(batch), balanced_center(X, T), atol=1e-3)


def test_result_does_not_depend_on_item_order():
    X, T = data(2)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_array_equal(balanced_center(X[order], T), balanced_center(X, T)[order])


def test_class_embeddings_are_centred_on_their_mean():
    _, T = data(3)
    np.testing.assert_allclose(centred_class_embeddings(T), l2_normalize(T - T.mean(axis=0)))
    np.testing.assert_allclose(np.linalg.norm(balanced_center(data(3)[0].astype(np.float32), T), axis=1), 1,
                               rtol=1e-6)


def test_an_item_at_the_centre_is_a_clear_error():
    T = np.eye(2)
    with pytest.raises(InputError, match="centring leaves item 0 at zero"):
        balanced_center(np.array([[1.0, 0.0]]), T)


def test_cli_center_runs_every_method_on_the_centred_embeddings(make_files, tmp_path):
    emb, cls = make_files(n_classes=4)
    out = tmp_path / "pred.parquet"
    result = CliRunner().invoke(app, ["classify", str(emb), "--classes", str(cls), "--label-col", "category",
                                      "--center", "balanced", "--min-count", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(out)
    X = np.asarray(pq.read_table(emb).column("clip_image_features").to_pylist())
    T = l2_normalize(np.asarray(pq.read_table(cls).column("embedding").to_pylist()))
    expected = (reference_center(X, T) @ l2_normalize(T - T.mean(axis=0)).T).argmax(axis=1)
    assert (expected != (X @ T.T).argmax(axis=1)).any()  # centring changes some decisions here
    names = np.array(pq.read_table(cls).column("name").to_pylist())
    assert table.column("clip_image_features__baseline__pred").to_pylist() == names[expected].tolist()
    summary = json.loads(result.stdout)
    labels = pq.read_table(emb).column("category").to_pylist()
    assert summary["methods"]["baseline"]["accuracy"]["clip_image_features"] == pytest.approx(
        np.mean(names[expected] == np.array(labels)))

    bad = CliRunner().invoke(app, ["classify", str(emb), "--classes", str(cls), "--center", "magic"])
    assert bad.exit_code == 2
    assert bad.stderr == "Error: Invalid value for '--center': Value error, 'magic' is not one of 'none', 'balanced'.\n"


def test_library_rejects_an_unknown_centring():
    from pairclass.center import check_center

    with pytest.raises(InputError, match="unknown centring 'magic'; choose from none, balanced"):
        check_center("magic")
