"""Training loop, encoder save/load and the library entry points on generated data."""

import json

import numpy as np
import pytest
import torch

from dml_data import clustered, write_items
from pairclass.classify import l2_normalize
from pairclass.dml import load_encoder, run_evaluate_encoder, run_train, save_encoder
from pairclass.dml.losses import build_loss
from pairclass.dml.model import ProjectionHead
from pairclass.dml.train import class_batches, train_encoder
from pairclass.errors import InputError
from pairclass.metrics import recall_at_k


def _train(X, labels, *, loss="proxy_anchor", epochs=15, seed=0, **kw):
    names, codes = np.unique(labels, return_inverse=True)
    torch.manual_seed(seed)
    model = ProjectionHead(X.shape[1], dim=8, hidden=32)
    criterion = build_loss(loss, names.size, 8, **kw)
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
    assert out.dtype == np.float32 and out.shape == (len(X), 8)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert enc.config["loss"] == "proxy_anchor"


def test_load_encoder_errors(tmp_path):
    with pytest.raises(InputError, match=f"^{tmp_path / 'nope'}: encoder directory not found$"):
        load_encoder(tmp_path / "nope")
    model = ProjectionHead(6, dim=3, hidden=0)
    save_encoder(model, tmp_path / "enc")
    (tmp_path / "enc" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="model.safetensors: weights do not match the config"):
        load_encoder(tmp_path / "enc")
    save_encoder(model, tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    (tmp_path / "enc" / "config.json").write_text(json.dumps({**config, "dim": 4}))
    with pytest.raises(InputError, match="model.safetensors: weights do not match the config"):
        load_encoder(tmp_path / "enc")
    (tmp_path / "enc" / "config.json").write_text("{")
    with pytest.raises(InputError, match="config.json: not a valid encoder config"):
        load_encoder(tmp_path / "enc")
    (tmp_path / "enc" / "config.json").unlink()
    with pytest.raises(InputError, match="config.json: missing; not an encoder directory"):
        load_encoder(tmp_path / "enc")
    with pytest.raises(InputError, match="this encoder expects width 6"):
        ProjectionHead  # noqa: B018
        save_encoder(model, tmp_path / "enc2").transform(np.ones((2, 5), dtype=np.float32))


def test_run_train_restricts_to_train_classes_and_evaluate_holds_out(tmp_path):
    X, labels = clustered(n_classes=6, per_class=15, seed=4)
    data = write_items(tmp_path / "items.parquet", X, labels)
    (tmp_path / "train.txt").write_text("class0\nclass1\nclass2\n")
    (tmp_path / "test.txt").write_text("class3\nclass4\nclass5\n")
    result = run_train(
        data, out=tmp_path / "enc", label_col="category", dim=8, hidden=16, epochs=2, device="cpu",
        train_classes=tmp_path / "train.txt",
    )
    assert result.classes == ["class0", "class1", "class2"] and result.n_items == 45
    assert load_encoder(tmp_path / "enc").config["classes"] == result.classes
    held_out = run_evaluate_encoder(data, encoder=tmp_path / "enc", label_col="category", test_classes=tmp_path / "test.txt")
    assert held_out.n_items == 45 and held_out.warnings == []
    everything = run_evaluate_encoder(data, encoder=tmp_path / "enc", label_col="category")
    assert everything.warnings == [
        "3 of the 6 evaluated classes were seen in training, so these are not unseen-class scores (pass --test-classes)"
    ]
