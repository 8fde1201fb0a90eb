import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pairclass.cli import app

from dml_data import clustered, diverging, write_items
from pairclass.dml.validation import hold_out_classes

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def split_data(tmp_path):
    X, labels = clustered(n_classes=12, per_class=30, seed=3)
    emb = write_items(tmp_path / "emb.parquet", X, labels)
    names = sorted(set(labels))
    (tmp_path / "train.txt").write_text("\n".join(names[:8]))
    (tmp_path / "test.txt").write_text("\n".join(names[8:]))
    return emb, tmp_path / "train.txt", tmp_path / "test.txt"


def test_train_then_evaluate_on_unseen_classes(tmp_path, split_data):
    emb, train_classes, test_classes = split_data
    enc = tmp_path / "encoder"
    result = invoke("train", emb, "--label-col", "category", "--view", "clip_image_features",
                    "--train-classes", train_classes, "--epochs", 8, "--lr", 1e-3, "--batch-size", 64,
                    "--device", "cpu", "--out", enc, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    # Two of the eight training classes are held out to choose the epoch on.
    assert summary["n_classes"] == 6 and summary["n_items"] == 180
    val = summary["validation"]
    assert len(val["classes"]) == 2 and val["n_items"] == 60 and val["improved"] and val["best_epoch"] > 0
    best, raw = val["curve"][val["best_epoch"]], val["raw"]
    assert (best["recall_at_1"], best["map_at_r"]) > (raw["recall_at_1"], raw["map_at_r"])
    config = json.loads((enc / "config.json").read_text())
    assert config["validation"] == val and config["best_epoch"] == val["best_epoch"]

    result = invoke("evaluate-encoder", emb, "--label-col", "category", "--encoder", enc,
                    "--test-classes", test_classes, "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores) == {"raw", "encoder"}
    keys = {"recall_at_1", "recall_at_10", "recall_at_100", "recall_at_1000", "map_at_r", "opis"}
    assert keys <= set(scores["raw"]) and keys <= set(scores["encoder"])
    # The head is trained on six classes and evaluated on four others it never saw.
    assert scores["encoder"]["recall_at_1"] > scores["raw"]["recall_at_1"]
    assert result.stderr == ""


def test_train_that_harms_the_validation_classes_keeps_the_identity(tmp_path):
    held = hold_out_classes(10, 0.4, np.random.default_rng(0))
    X, labels = diverging(set(held.tolist()), per_class=20)
    emb = write_items(tmp_path / "emb.parquet", X, labels)
    enc = tmp_path / "enc"
    result = invoke("train", emb, "--label-col", "category", "--view", "clip_image_features", "--hidden", 32,
                    "--epochs", 4, "--lr", 1e-2, "--batch-size", 64, "--val-classes-frac", 0.4, "--patience", 2,
                    "--device", "cpu", "--out", enc, "--json")
    assert result.exit_code == 0, result.stderr
    val = json.loads(result.stdout)["validation"]
    assert (val["improved"], val["best_epoch"], len(val["curve"])) == (False, 0, 3)
    raw = val["raw"]
    assert result.stderr == (
        f"no epoch beat the raw embeddings on the 4 validation classes (R@1 {raw['recall_at_1']:.4f}, "
        f"MAP@R {raw['map_at_r']:.4f}); kept the identity; wrote {enc}\n"
    )
    result = invoke("evaluate-encoder", emb, "--label-col", "category", "--encoder", enc, "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["encoder"]["recall_at_1"] == scores["raw"]["recall_at_1"]
    assert "this encoder is the identity" in result.stderr


@pytest.mark.parametrize(
    "extra,line",
    [
        (("--dim", "0"), "Error: dim must be an integer from 1 to 65536, got 0\n"),
        (("--dim", "12"), "Error: dim must be at least the input width 24 (the head starts as the identity), got 12\n"),
        (("--loss", "magic"), "Error: unknown loss 'magic'; choose one of proxy_anchor, proxy_nca, soft_triple, contrastive\n"),
        (("--seed", "-1"), "Error: seed must be from 0 to 9223372036854775807, got -1\n"),
        (("--patience", "0"), "Error: patience must be at least 1, got 0\n"),
        (("--val-classes-frac", "1"), "Error: val_classes_frac must be at least 0 and below 1, got 1.0\n"),
        (("--val-classes-frac", "0.9"),
         "Error: holding out 11 of 12 classes for validation leaves fewer than 2 to train on; "
         "give more classes or val_classes_frac 0 (no validation)\n"),
    ],
)
def test_train_bad_options(tmp_path, split_data, extra, line):
    emb, _, _ = split_data
    result = invoke("train", emb, "--label-col", "category", "--view", "clip_image_features",
                    "--out", tmp_path / "enc", *extra)
    assert result.exit_code == 2
    assert result.stderr == line


def test_evaluate_refuses_an_encoder_config_with_absurd_sizes(tmp_path, split_data):
    emb, _, _ = split_data
    enc = tmp_path / "enc"
    assert invoke("train", emb, "--label-col", "category", "--view", "clip_image_features", "--epochs", 1,
                  "--hidden", 0, "--device", "cpu", "--out", enc).exit_code == 0
    config = json.loads((enc / "config.json").read_text())
    (enc / "config.json").write_text(json.dumps({**config, "hidden": 10**7}))
    result = invoke("evaluate-encoder", emb, "--label-col", "category", "--encoder", enc)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {enc / 'config.json'}: not a valid encoder config: hidden must be an integer from 0 to 65536, "
        "got 10000000\n"
    )


@pytest.mark.parametrize("loss", ["proxy_anchor", "proxy_nca", "soft_triple", "contrastive"])
@pytest.mark.parametrize("regularised", [False, True])
def test_every_loss_trains_from_the_cli_with_and_without_so_and_tcm(tmp_path, loss, regularised):
    X, labels = clustered(n_classes=6, per_class=30, seed=3)
    emb = write_items(tmp_path / "emb.parquet", X, labels)
    extra = []
    if regularised:
        extra = ["--tcm-weight", 1.0] + (["--so-weight", 0.1] if loss != "contrastive" else [])
    enc = tmp_path / "enc"
    result = invoke("train", emb, "--label-col", "category", "--view", "clip_image_features", "--loss", loss,
                    *extra, "--epochs", 6, "--lr", 1e-2, "--batch-size", 64, "--val-classes-frac", 0,
                    "--device", "cpu", "--out", enc, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["loss"] == loss and len(summary["epoch_loss"]) == 6 and summary["validation"] is None
    assert summary["epoch_loss"][-1] < summary["epoch_loss"][0]
    config = json.loads((enc / "config.json").read_text())
    assert config["best_epoch"] == 6
    assert config["so_weight"] == (0.1 if regularised and loss != "contrastive" else 0.0)
    assert config["tcm_weight"] == (1.0 if regularised else 0.0)


def test_train_option_defaults_are_the_library_defaults():
    import inspect

    from pairclass.cli import train
    from pairclass.dml import run_train
    from pairclass.dml.fit import fit_head

    cli = inspect.signature(train).parameters
    library = {**inspect.signature(fit_head).parameters, **inspect.signature(run_train).parameters}
    shared = set(cli) & set(library) - {"embeddings"}
    assert {"epochs", "lr", "patience", "val_classes_frac", "dim", "hidden", "seed"} <= shared
    for name in shared:
        assert cli[name].default == library[name].default, name


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
    # Trained on all five classes (no validation classes): the encoder is meant for these classes.
    assert invoke("train", emb, "--label-col", "category", "--epochs", 10, "--lr", 1e-3, "--val-classes-frac", 0,
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
