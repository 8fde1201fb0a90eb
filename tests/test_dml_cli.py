import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pairclass.cli import app

from dml_data import clustered, write_items

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def split_data(tmp_path):
    X, labels = clustered(n_classes=8, per_class=30, seed=3)
    emb = write_items(tmp_path / "emb.parquet", X, labels)
    names = sorted(set(labels))
    (tmp_path / "train.txt").write_text("\n".join(names[:4]))
    (tmp_path / "test.txt").write_text("\n".join(names[4:]))
    return emb, tmp_path / "train.txt", tmp_path / "test.txt"


def test_train_then_evaluate_on_unseen_classes(tmp_path, split_data):
    emb, train_classes, test_classes = split_data
    enc = tmp_path / "encoder"
    result = invoke("train", emb, "--label-col", "category", "--view", "clip_image_features",
                    "--train-classes", train_classes, "--dim", 16, "--epochs", 8, "--batch-size", 64,
                    "--device", "cpu", "--out", enc, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_classes"] == 4 and summary["n_items"] == 120
    assert (enc / "model.safetensors").exists()

    result = invoke("evaluate-encoder", emb, "--label-col", "category", "--encoder", enc,
                    "--test-classes", test_classes, "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores) == {"raw", "encoder"}
    keys = {"recall_at_1", "recall_at_10", "recall_at_100", "recall_at_1000", "map_at_r", "opis"}
    assert keys <= set(scores["raw"]) and keys <= set(scores["encoder"])
    # The head is trained on four classes and evaluated on four others it never saw.
    assert scores["encoder"]["recall_at_1"] > scores["raw"]["recall_at_1"]
    assert result.stderr == ""


@pytest.mark.parametrize(
    "extra,line",
    [
        (("--dim", "0"), "Error: dim must be at least 1, got 0\n"),
        (("--loss", "magic"), "Error: unknown loss 'magic'; choose one of proxy_anchor, proxy_nca, soft_triple, contrastive\n"),
    ],
)
def test_train_bad_options(tmp_path, split_data, extra, line):
    emb, _, _ = split_data
    result = invoke("train", emb, "--label-col", "category", "--out", tmp_path / "enc", *extra)
    assert result.exit_code == 2
    assert result.stderr == line


@pytest.mark.parametrize("loss", ["proxy_anchor", "proxy_nca", "soft_triple", "contrastive"])
@pytest.mark.parametrize("regularised", [False, True])
def test_every_loss_trains_from_the_cli_with_and_without_so_and_tcm(tmp_path, split_data, loss, regularised):
    emb, _, _ = split_data
    extra = []
    if regularised:
        extra = ["--tcm-weight", 1.0] + (["--so-weight", 0.1] if loss != "contrastive" else [])
    enc = tmp_path / "enc"
    result = invoke("train", emb, "--label-col", "category", "--loss", loss, *extra, "--dim", 16,
                    "--epochs", 6, "--lr", 1e-2, "--batch-size", 64, "--device", "cpu", "--out", enc, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["loss"] == loss and len(summary["epoch_loss"]) == 6
    assert summary["epoch_loss"][-1] < summary["epoch_loss"][0]
    config = json.loads((enc / "config.json").read_text())
    assert config["so_weight"] == (0.1 if regularised and loss != "contrastive" else 0.0)
    assert config["tcm_weight"] == (1.0 if regularised else 0.0)


def test_train_missing_view_and_single_class(tmp_path):
    X, labels = clustered(n_classes=1, per_class=20)
    emb = write_items(tmp_path / "one.parquet", X, labels)
    result = invoke("train", emb, "--label-col", "category", "--view", "nope", "--out", tmp_path / "enc")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {emb}: nope: column not found")
    result = invoke("train", emb, "--label-col", "category", "--view", "clip_image_features",
                    "--out", tmp_path / "enc")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {emb}: category: need at least 2 classes to train, got 1\n"


def test_classify_with_encoder_reports_encoded_methods(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, labels = clustered(n_classes=5, per_class=40, seed=4)
    emb = write_items(tmp_path / "emb.parquet", X, labels)
    names = sorted(set(labels))
    # Class embeddings: each class's mean item, so the raw cosine suffers from the noise dimensions.
    T = np.stack([X[labels == n].mean(0) for n in names])
    cls = tmp_path / "classes.parquet"
    pq.write_table(pa.table({"name": names, "embedding": pa.array(list(T), pa.list_(pa.float32()))}), cls)
    enc = tmp_path / "enc"
    assert invoke("train", emb, "--label-col", "category", "--dim", 16, "--epochs", 10, "--lr", 1e-3,
                  "--batch-size", 64, "--device", "cpu", "--out", enc).exit_code == 0
    result = invoke("classify", emb, "--classes", cls, "--views", "clip_image_features",
                    "--label-col", "category", "--encoder", enc, "--min-count", 3, "--pairwise", "--json")
    assert result.exit_code == 0, result.stderr
    methods = json.loads(result.stdout)["methods"]
    assert {"baseline", "pairwise", "baseline+encoder", "pairwise+encoder"} <= set(methods)
    view = "clip_image_features"
    assert methods["baseline+encoder"]["accuracy"][view] > methods["baseline"]["accuracy"][view]


def test_classify_with_missing_encoder(tmp_path, split_data):
    emb, _, _ = split_data
    missing = tmp_path / "nowhere"
    cls = tmp_path / "c.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"name": ["a", "b"], "embedding": pa.array([[1.0] * 24, [0.5] * 12 + [-1.0] * 12],
                                                                       pa.list_(pa.float32()))}), cls)
    result = invoke("classify", emb, "--classes", cls, "--views", "clip_image_features", "--encoder", missing)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {missing}")
