"""Training loop, encoder save/load and the library entry points on generated data."""

import json

import numpy as np
import pytest
import torch

from dml_data import clustered, diverging, write_items
from pairclass.classify import l2_normalize
from pairclass.dml import load_encoder, run_evaluate_encoder, run_train, save_encoder
from pairclass.dml.fit import fit_head
from pairclass.dml.losses import build_loss
from pairclass.dml.model import ProjectionHead
from pairclass.dml.train import class_batches, train_encoder
from pairclass.dml.validation import hold_out_classes, validation_scores
from pairclass.errors import InputError
from pairclass.metrics import recall_at_k


def _train(X, labels, *, loss="proxy_anchor", epochs=15, seed=0, **kw):
    names, codes = np.unique(labels, return_inverse=True)
    torch.manual_seed(seed)
    model = ProjectionHead(X.shape[1], hidden=32)
    criterion = build_loss(loss, names.size, X.shape[1], **kw)
    history = train_encoder(model, criterion, X, codes, epochs=epochs, batch_size=64, lr=1e-2, seed=seed)
    return model, history


def test_class_batches_cover_every_anchor_and_hold_positive_pairs():
    labels = np.repeat(np.arange(5), [2, 3, 4, 5, 6])
    batches = class_batches(labels, 12, 3, np.random.default_rng(0))
    anchors = np.concatenate([b.reshape(-1, 3)[:, 0] for b in batches])
    assert sorted(anchors.tolist()) == list(range(labels.size))
    for b in batches:
        groups = labels[b.reshape(-1, 3)]
        assert (groups == groups[:, :1]).all()


@pytest.mark.parametrize("loss", ["proxy_anchor", "contrastive"])
def test_a_few_epochs_raise_recall_on_unseen_classes(loss):
    X, labels = clustered(n_classes=12, per_class=25, seed=0)
    seen = np.isin(labels, [f"class{i}" for i in range(0, 12, 2)])
    model, history = _train(X[seen], labels[seen], loss=loss, tcm_weight=1.0 if loss == "contrastive" else 0.0)
    assert history.epoch_loss[-1] < history.epoch_loss[0]
    with torch.inference_mode():
        Z = model(torch.from_numpy(X[~seen])).numpy()
    raw = recall_at_k(l2_normalize(X[~seen]), labels[~seen], ks=(1,))[1]
    trained = recall_at_k(Z, labels[~seen], ks=(1,))[1]
    assert trained > raw + 0.1


def test_same_seed_same_weights():
    X, labels = clustered(n_classes=4, per_class=10, seed=1)
    a, _ = _train(X, labels, epochs=2, seed=3, so_weight=0.1)
    b, _ = _train(X, labels, epochs=2, seed=3, so_weight=0.1)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_saved_then_loaded_encoder_gives_identical_outputs(tmp_path):
    X, labels = clustered(n_classes=4, per_class=10, seed=2)
    model, _ = _train(X, labels, epochs=1)
    with torch.inference_mode():
        expected = model(torch.from_numpy(X)).numpy()
    save_encoder(model, tmp_path / "enc", {"loss": "proxy_anchor"})
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["config.json", "model.safetensors"]
    enc = load_encoder(tmp_path / "enc")
    out = enc.transform(X)
    assert out.dtype == np.float32 and out.shape == (len(X), X.shape[1])
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert enc.config["loss"] == "proxy_anchor"


def test_load_encoder_errors(tmp_path):
    with pytest.raises(InputError, match=f"^{tmp_path / 'nope'}: encoder directory not found$"):
        load_encoder(tmp_path / "nope")
    model = ProjectionHead(6, hidden=0)
    save_encoder(model, tmp_path / "enc")
    (tmp_path / "enc" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="model.safetensors: weights do not match the config"):
        load_encoder(tmp_path / "enc")
    save_encoder(model, tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    (tmp_path / "enc" / "config.json").write_text(json.dumps({**config, "dim": 7}))
    with pytest.raises(InputError, match="model.safetensors: weights do not match the config"):
        load_encoder(tmp_path / "enc")
    (tmp_path / "enc" / "config.json").write_text("{")
    with pytest.raises(InputError, match="config.json: not a valid encoder config"):
        load_encoder(tmp_path / "enc")
    (tmp_path / "enc" / "config.json").unlink()
    with pytest.raises(InputError, match="config.json: missing; not an encoder directory"):
        load_encoder(tmp_path / "enc")
    with pytest.raises(InputError, match="this encoder expects width 6"):
        save_encoder(model, tmp_path / "enc2").transform(np.ones((2, 5), dtype=np.float32))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"in_dim": -6}, "in_dim must be an integer from 1 to 65536, got -6"),
        ({"hidden": 10**7}, "hidden must be an integer from 0 to 65536, got 10000000"),
        ({"dim": 10**7}, "dim must be an integer from 1 to 65536, got 10000000"),
        ({"dim": 6.5}, "dim must be an integer from 1 to 65536, got 6.5"),
        ({"hidden": True}, "hidden must be an integer from 0 to 65536, got True"),
        ({"dim": 4}, "dim must be at least the input width 6 (the head starts as the identity), got 4"),
        ({"hidden": None}, "missing 'hidden'"),
        ({"format": "pairclass-encoder/1"},
         "format is 'pairclass-encoder/1', expected 'pairclass-encoder/2' (retrain with pairclass train)"),
    ],
)
def test_a_bad_config_is_refused_before_building_the_head(tmp_path, monkeypatch, change, problem):
    save_encoder(ProjectionHead(6, hidden=4), tmp_path / "enc")
    config_path = tmp_path / "enc" / "config.json"
    config = {**json.loads(config_path.read_text()), **change}
    config_path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))

    def no_allocation(*args, **kwargs):
        raise AssertionError("the head was built from a bad config")

    monkeypatch.setattr("pairclass.dml.io.ProjectionHead", no_allocation)
    with pytest.raises(InputError) as e:
        load_encoder(tmp_path / "enc")
    assert str(e.value) == f"{config_path}: not a valid encoder config: {problem}"


def test_half_precision_weights_load_as_float32(tmp_path):
    from safetensors.torch import load_file, save_file

    X, labels = clustered(n_classes=4, per_class=10, seed=2)
    model, _ = _train(X, labels, epochs=1)
    enc = save_encoder(model, tmp_path / "enc")
    weights = tmp_path / "enc" / "model.safetensors"
    save_file({k: v.half() for k, v in load_file(str(weights)).items()}, str(weights))
    out = load_encoder(tmp_path / "enc").transform(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, enc.transform(X), atol=2e-3)


def test_the_untrained_head_is_the_raw_embeddings():
    X, _ = clustered(n_classes=3, per_class=5, seed=5)
    raw = l2_normalize(X.astype(np.float64))
    with torch.inference_mode():
        same = ProjectionHead(X.shape[1], hidden=16)(torch.from_numpy(X)).numpy()
        wider = ProjectionHead(X.shape[1], dim=X.shape[1] + 5, hidden=0)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(same, raw, atol=1e-6)
    # Wider: the raw vectors padded with zeros, so every cosine is the raw one.
    np.testing.assert_allclose(wider @ wider.T, raw @ raw.T, atol=1e-6)
    with pytest.raises(InputError, match="dim must be at least the input width 24"):
        ProjectionHead(X.shape[1], dim=8)


def test_epoch_zero_of_the_curve_is_the_raw_embeddings_score():
    X, labels = clustered(n_classes=10, per_class=20, seed=6)
    fit = fit_head(X, labels, hidden=16, epochs=1, batch_size=64, seed=2)
    val = np.isin(labels, fit.val_classes)
    raw = validation_scores(l2_normalize(X[val]), labels[val])
    assert fit.history.curve[0] == {"epoch": 0, **raw}
    assert fit.validation()["raw"] == raw
    assert not set(fit.val_classes) & set(fit.classes) and len(fit.val_classes) == 2


def test_validation_keeps_the_best_epoch_and_stops_after_patience():
    X, labels = clustered(n_classes=10, per_class=20, seed=6)
    fit = fit_head(X, labels, hidden=16, epochs=30, lr=1e-2, batch_size=64, patience=2, seed=2)
    h = fit.history
    scores = [(c["recall_at_1"], c["map_at_r"]) for c in h.curve]
    assert h.best_epoch > 0 and scores[h.best_epoch] == max(scores) and scores[h.best_epoch] > scores[0]
    assert len(h.epoch_loss) == h.best_epoch + 2 < 30
    assert len(h.curve) == len(h.epoch_loss) + 1
    # The model ends with the best epoch's weights, not the last epoch's.
    val = np.isin(labels, fit.val_classes)
    with torch.inference_mode():
        Z = fit.model(torch.from_numpy(X[val])).numpy()
    assert validation_scores(Z, labels[val]) == {k: v for k, v in h.curve[h.best_epoch].items() if k != "epoch"}


def _harmful(seed=0):
    """Data on which training on the other classes harms the classes ``fit_head`` holds out."""
    held = hold_out_classes(10, 0.4, np.random.default_rng(seed))
    X, labels = diverging(set(held.tolist()), per_class=20)
    return X, labels, np.isin(labels, [f"class{i}" for i in held])


def test_training_that_harms_the_held_out_classes_keeps_the_identity():
    X, labels, held = _harmful()
    kw = dict(hidden=32, epochs=4, lr=1e-2, batch_size=64, seed=0)
    # Without validation, a head trained on the other classes does harm the held-out ones...
    plain = fit_head(X[~held], labels[~held], val_classes_frac=0, **kw)
    with torch.inference_mode():
        Z = plain.model(torch.from_numpy(X[held])).numpy()
    raw = validation_scores(l2_normalize(X[held]), labels[held])
    assert validation_scores(Z, labels[held])["map_at_r"] < raw["map_at_r"] - 0.02
    # ...so with them held out, no epoch beats epoch 0 and the head stays the identity.
    fit = fit_head(X, labels, val_classes_frac=0.4, patience=4, **kw)
    assert fit.validation()["classes"] == sorted(set(labels[held]))
    assert fit.history.best_epoch == 0 and not fit.improved and len(fit.history.curve) == 5
    with torch.inference_mode():
        out = fit.model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, l2_normalize(X.astype(np.float64)), atol=1e-6)


def test_run_train_restricts_to_train_classes_and_evaluate_holds_out(tmp_path):
    X, labels = clustered(n_classes=8, per_class=15, seed=4)
    data = write_items(tmp_path / "items.parquet", X, labels)
    (tmp_path / "train.txt").write_text("class0\nclass1\nclass2\nclass3\nclass4\n")
    (tmp_path / "test.txt").write_text("class5\nclass6\nclass7\n")
    result = run_train(
        data, out=tmp_path / "enc", label_col="category", hidden=16, epochs=2, batch_size=16, lr=1e-2, device="cpu",
        train_classes=tmp_path / "train.txt",
    )
    val = result.validation
    assert len(result.classes) == 3 and result.n_items == 45 and len(val["classes"]) == 2
    assert sorted(result.classes + val["classes"]) == [f"class{i}" for i in range(5)]
    config = load_encoder(tmp_path / "enc").config
    assert config["classes"] == result.classes and config["validation"] == val
    assert config["best_epoch"] == val["best_epoch"] and len(val["curve"]) == 3
    held_out = run_evaluate_encoder(data, encoder=tmp_path / "enc", label_col="category", test_classes=tmp_path / "test.txt")
    assert held_out.n_items == 45 and held_out.warnings == []
    everything = run_evaluate_encoder(data, encoder=tmp_path / "enc", label_col="category")
    assert everything.warnings[0] == (
        "5 of the 8 evaluated classes were seen in training or validation, so these are not unseen-class scores "
        "(pass --test-classes)"
    )
