import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass import PairwiseClassifier, run_classify
from pairclass.cli import app
from pairclass.methods import DEFAULT_METHOD

from conftest import embedding_array, run_methods

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_json_summary_matches_library(make_files, tmp_path):
    emb, cls = make_files()
    out = tmp_path / "preds.parquet"
    result = invoke("classify", emb, "--classes", cls, "--label-col", "category", "--k", 4,
                    "--min-count", 3, "--pairwise", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    lib = run_classify(emb, cls, label_col="category", estimator=PairwiseClassifier(k=4, min_count=3),
                       methods=[DEFAULT_METHOD, "pairwise"])
    assert summary == json.loads(json.dumps(lib.to_json()))
    assert summary["n_items"] == 90
    assert summary["views"] == ["clip_image_features", "clip_text_features"]
    assert set(summary["methods"]) == {"baseline", "pairwise", DEFAULT_METHOD, "default"}
    for m in summary["methods"].values():
        assert 0 <= m["agreement_f1"] <= 1
        assert set(m["accuracy"]) == set(m["f1"]) == set(summary["views"])

    preds = pq.read_table(out)
    assert preds.num_rows == 90
    assert preds.column("product_id").to_pylist() == [f"p{i}" for i in range(90)]
    labels = np.array(preds.column("category").to_pylist())
    for view in summary["views"]:
        for method in ("baseline", "pairwise"):
            pred = np.array(preds.column(f"{view}__{method}__pred").to_pylist())
            assert summary["methods"][method]["accuracy"][view] == pytest.approx((pred == labels).mean())
    img = np.array(preds.column("clip_image_features__pairwise__pred").to_pylist())
    txt = np.array(preds.column("clip_text_features__pairwise__pred").to_pylist())
    from sklearn.metrics import f1_score
    assert summary["methods"]["pairwise"]["agreement_f1"] == pytest.approx(
        f1_score(txt, img, average="weighted"))


def test_table_output_and_single_view(make_files):
    emb, cls = make_files()
    result = invoke("classify", emb, "--classes", cls, "--views", "clip_image_features", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["methods"]["baseline"]["agreement_f1"] is None
    assert "accuracy" not in summary["methods"]["baseline"]
    result = invoke("classify", emb, "--classes", cls, "--label-col", "category")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "agreement" in result.stderr and "per-class F1" in result.stderr


def test_method_baseline_runs_only_the_baseline(make_files):
    emb, cls = make_files()
    result = invoke("classify", emb, "--classes", cls, "--method", "baseline", "--json")
    summary = json.loads(result.stdout)
    assert list(summary["methods"]) == ["baseline"]
    assert summary["diagnostics"]["n_scans"] == 1 and summary["diagnostics"]["fallback_pairs"] == {}


def test_csv_output(make_files, tmp_path):
    emb, cls = make_files()
    out = tmp_path / "p.csv"
    assert invoke("classify", emb, "--classes", cls, "--out", out).exit_code == 0
    assert out.read_text().splitlines()[0].startswith('"product_id"')
    assert len(out.read_text().splitlines()) == 91


def test_demo_data_end_to_end():
    emb, cls = ROOT / "data" / "demo.parquet", ROOT / "data" / "demo_classes.parquet"
    result = invoke("classify", emb, "--classes", cls, "--views", "product_name,description",
                    "--label-col", "category", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_items"] == 1050
    # Real text embeddings of real products: every method is far above the 1/7 chance level,
    # and the default method is more accurate than the cosine baseline on both views.
    for m in summary["methods"].values():
        assert min(m["accuracy"].values()) > 0.4
    base, default = summary["methods"]["baseline"], summary["methods"]["default"]
    for view in summary["views"]:
        assert default["accuracy"][view] > base["accuracy"][view]


def bad_embeddings(tmp_path, values, name="emb.parquet"):
    path = tmp_path / name
    pq.write_table(pa.table({
        "product_id": ["a", "b"],
        "clip_image_features": pa.array(values, pa.list_(pa.float32())),
        "clip_text_features": pa.array(values, pa.list_(pa.float32())),
    }), path)
    return path


def classes_file(tmp_path, names, dim=2):
    path = tmp_path / "classes.parquet"
    T = np.eye(max(len(names), dim))[: len(names), :dim] + 0.1
    pq.write_table(pa.table({"name": names, "embedding": embedding_array(T)}), path)
    return path


@pytest.mark.parametrize(
    "values,problem",
    [
        ([[1.0, 0.0], [float("nan"), 1.0]], "clip_image_features: 1 row(s) with NaN or infinite values, first at row 1"),
        ([[1.0, 0.0], [0.0, 0.0]], "clip_image_features: 1 all-zero vector(s), first at row 1"),
        ([[1.0, 0.0], [1.0]], "clip_image_features: ragged embeddings: row 1 has length 1, row 0 has 2"),
    ],
)
def test_bad_embedding_values_exit_2(tmp_path, values, problem):
    emb = bad_embeddings(tmp_path, values)
    cls = classes_file(tmp_path, ["x", "y"])
    result = invoke("classify", emb, "--classes", cls)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {emb}: {problem}\n"


def test_bad_inputs_exit_2(tmp_path):
    emb = bad_embeddings(tmp_path, [[1.0, 0.0], [0.0, 1.0]])
    cls = classes_file(tmp_path, ["x", "y"])
    cases = {
        (tmp_path / "missing.parquet", cls, ()): f"{tmp_path / 'missing.parquet'}: file not found",
        (emb, cls, ("--views", "nope")): f"{emb}: nope: column not found "
        "(columns: product_id, clip_image_features, clip_text_features)",
        (emb, cls, ("--id-col", "sku")): f"{emb}: sku: column not found "
        "(columns: product_id, clip_image_features, clip_text_features)",
        (emb, cls, ("--label-col", "category")): f"{emb}: category: column not found "
        "(columns: product_id, clip_image_features, clip_text_features)",
        (emb, cls, ("--k", "0")): "Invalid value for '--k': Input should be greater than or equal to 1",
        (emb, cls, ("--k", "abc")): "Invalid value for '--k': Input should be a valid integer, unable to parse "
        "string as an integer",
        (emb, cls, ("--views", ",")): "Invalid value: give at least one column",
    }
    for (e, c, extra), line in cases.items():
        result = invoke("classify", e, "--classes", c, *extra)
        assert result.exit_code == 2, line
        assert result.stderr == f"Error: {line}\n"


def test_bad_class_files_exit_2(tmp_path):
    emb = bad_embeddings(tmp_path, [[1.0, 0.0], [0.0, 1.0]])
    single = classes_file(tmp_path, ["x"])
    result = invoke("classify", emb, "--classes", single)
    assert (result.exit_code, result.stderr) == (2, f"Error: {single}: name: need at least 2 classes, got 1\n")
    dup = tmp_path / "dup.txt"
    dup.write_text("x\ny\nx\n")
    result = invoke("classify", emb, "--classes", dup)
    assert (result.exit_code, result.stderr) == (2, f"Error: {dup}: duplicate class name 'x'\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = invoke("classify", emb, "--classes", empty)
    assert (result.exit_code, result.stderr) == (2, f"Error: {empty}: need at least 2 classes, got 0\n")
    names_only = tmp_path / "names.txt"
    names_only.write_text("x\ny\n")
    result = invoke("classify", emb, "--classes", names_only)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {names_only}: no 'embedding' column;")
    wide = classes_file(tmp_path, ["x", "y"], dim=3)
    result = invoke("classify", emb, "--classes", wide)
    assert (result.exit_code, result.stderr) == (
        2, f"Error: {wide}: embedding: dimension 3 does not match {emb}: clip_image_features (2)\n")


def test_failed_run_keeps_previous_output(tmp_path, make_files):
    emb, cls = make_files()
    out = tmp_path / "preds.parquet"
    assert invoke("classify", emb, "--classes", cls, "--out", out).exit_code == 0
    before = out.read_bytes()
    bad = bad_embeddings(tmp_path, [[1.0, 0.0], [0.0, 0.0]], name="bad.parquet")
    assert invoke("classify", bad, "--classes", cls, "--out", out).exit_code == 2
    assert out.read_bytes() == before


def test_every_command_has_help():
    result = invoke("--help")
    assert result.exit_code == 0
    for name, cmd in ((c.name, c) for c in app.registered_commands):
        help_result = invoke(name or cmd.callback.__name__.replace("_", "-"), "--help")
        assert help_result.exit_code == 0
        assert (cmd.callback.__doc__ or "").strip(), f"{name} has no help text"


def read_fixture(emb, cls):
    """The fixture files back as arrays: views (name -> float32 items), class embeddings and names."""
    table = pq.read_table(emb)
    views = {v: np.asarray(table.column(v).to_pylist(), dtype=np.float32)
             for v in ("clip_image_features", "clip_text_features")}
    classes = pq.read_table(cls)
    return views, np.asarray(classes.column("embedding").to_pylist()), np.array(classes.column("name").to_pylist())


def rejected(*args):
    """Run a command that must fail on its input; return its one-line stderr."""
    result = invoke(*args)
    assert result.exit_code == 2, result.stdout
    return result.stderr


def classify_preds(emb, cls, out, *options, method="pairwise"):
    """Run classify (k=4, min_count=3) with ``options`` and return ``method``'s predictions per view."""
    result = invoke("classify", emb, "--classes", cls, "--method", method, "--k", 4, "--min-count", 3, *options,
                    "--out", out)
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(out)
    return {v: table.column(f"{v}__{method}__pred").to_pylist() for v in ("clip_image_features", "clip_text_features")}


def test_tournament_option_reaches_the_classifier(tmp_path, make_files):
    from pairclass import PairwiseClassifier

    emb, cls = make_files(n_classes=5)
    got = classify_preds(emb, cls, tmp_path / "pred.parquet", "--tournament", "copeland")
    views, T, names = read_fixture(emb, cls)
    X = views["clip_image_features"]
    expected = PairwiseClassifier(T, k=4, min_count=3, tournament="copeland").fit(X).predict(X)
    assert (expected != PairwiseClassifier(T, k=4, min_count=3).fit(X).predict(X)).any()
    assert got["clip_image_features"] == names[expected].tolist()

    assert rejected("classify", emb, "--classes", cls, "--tournament", "league") == (
        "Error: Invalid value for '--tournament': Value error, 'league' is not one of 'bracket', 'copeland'.\n")


def test_match_option_reaches_the_classifier(tmp_path, make_files):
    from pairclass import PairwiseClassifier

    emb, cls = make_files(n_classes=5)
    views, T, names = read_fixture(emb, cls)
    X = views["clip_image_features"]
    seed = PairwiseClassifier(T, k=4, min_count=3).fit(X).predict(X)
    fisher = PairwiseClassifier(T, k=4, min_count=3, match="fisher").fit(X).predict(X)
    assert (seed != fisher).any()
    for option, expected in ((), seed), (("--match", "fisher"), fisher):
        got = classify_preds(emb, cls, tmp_path / f"pred{len(option)}.parquet", *option)
        assert got["clip_image_features"] == names[expected].tolist()

    assert rejected("classify", emb, "--classes", cls, "--match", "median").startswith(
        "Error: Invalid value for '--match': Value error, 'median' is not one of 'cosine'")


def test_proto_prior_option_reaches_the_methods(tmp_path, make_files):
    from pairclass.classify import l2_normalize

    emb, cls = make_files(n_classes=3)
    views, T, names = read_fixture(emb, cls)
    got = {}
    for prior in ("min-count", "class", "auto"):
        got[prior] = classify_preds(emb, cls, tmp_path / f"{prior}.parquet", "--proto-prior", prior, method="proto")
        expected = run_methods(views, l2_normalize(T), ["proto"], PairwiseClassifier(k=4, min_count=3),
                               proto_prior=prior)[1]["proto"]
        assert got[prior] == {v: names[p].tolist() for v, p in expected.items()}
    assert got["min-count"] != got["class"]
    # Two views: auto is min-count, and it is the default.
    assert got["auto"] == got["min-count"] == classify_preds(emb, cls, tmp_path / "default.parquet", method="proto")

    assert rejected("classify", tmp_path / "missing.parquet", "--classes", cls, "--proto-prior", "items") == (
        "Error: Invalid value for '--proto-prior': Value error, 'items' is not one of 'auto', 'min-count', 'class'.\n")
