"""Safe by default on the classify side: one-line errors, no lost data, newcomer paths."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass.cli import app
from pairclass.io import exclusive, read_classes

from conftest import embedding_array

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_byte_order_mark_is_not_part_of_the_first_class_name(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffShirts\nJeans\n".encode("utf-8"))
    assert read_classes(path).names == ["Shirts", "Jeans"]


def failed_write(emb, cls, out):
    result = invoke("classify", emb, "--classes", cls, "--out", out, "--json")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"Error: {out}: cannot write: ")
    return result.stderr


@pytest.mark.parametrize("kind", ["parent is a file", "a folder is in the way", "name too long"])
def test_write_failures_are_one_line(tmp_path, make_files, kind):
    if kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "preds.parquet"
    elif kind == "a folder is in the way":
        out = tmp_path / "preds.parquet"
        out.mkdir()
    else:
        out = tmp_path / ("p" * 300 + ".parquet")
    failed_write(*make_files(), out)


def test_a_full_disk_keeps_the_old_output(tmp_path, make_files, monkeypatch):
    emb, cls = make_files()
    out = tmp_path / "preds.parquet"
    assert invoke("classify", emb, "--classes", cls, "--out", out).exit_code == 0
    before = out.read_bytes()

    def full(self, table, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    assert failed_write(emb, cls, out) == f"Error: {out}: cannot write: No space left on device\n"
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.parquet", "emb.parquet", "preds.parquet"]


def test_a_killed_runs_temporary_file_is_cleaned_and_a_concurrent_run_refused(tmp_path, make_files):
    emb, cls = make_files()
    out = tmp_path / "preds.parquet"
    leftover = tmp_path / ".preds.parquet.abc123.tmp"
    leftover.write_bytes(b"half a file")
    assert invoke("classify", emb, "--classes", cls, "--out", out).exit_code == 0
    assert not leftover.exists()
    with exclusive(out):
        result = invoke("classify", emb, "--classes", cls, "--out", out)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {out}: another run is writing this output; wait for it to finish or pass "
                             "another --out\n")


def test_one_column_in_two_roles_and_list_ids_are_one_line(tmp_path, make_files):
    emb, cls = make_files()
    result = invoke("classify", emb, "--classes", cls, "--label-col", "product_id")
    assert (result.exit_code, result.stderr) == (
        2, f"Error: {emb}: product_id: one column cannot be both the id and the label column\n")
    path = tmp_path / "list_ids.parquet"
    pq.write_table(pa.table({"product_id": [["a"], ["b"]], "clip_image_features": embedding_array(np.eye(2)),
                             "clip_text_features": embedding_array(np.eye(2))}), path)
    result = invoke("classify", path, "--classes", cls)
    assert (result.exit_code, result.stderr) == (
        2, f"Error: {path}: product_id: ids must be strings or integers, got list<element: string>\n")


def test_tiny_vectors_classify_like_their_scaled_copies(tmp_path, make_files):
    emb, cls = make_files()
    table = pq.read_table(emb)
    tiny = tmp_path / "tiny.parquet"
    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if name.startswith("clip_"):
            X = np.asarray(col.to_pylist(), dtype=np.float32) * np.float32(1e-30)
            col = embedding_array(X)
        columns[name] = col
    pq.write_table(pa.table(columns), tiny)
    outs = []
    for i, path in enumerate((emb, tiny)):
        out = tmp_path / f"p{i}.parquet"
        result = invoke("classify", path, "--classes", cls, "--min-count", 3, "--pairwise", "--out", out)
        assert result.exit_code == 0, result.stderr
        outs.append(pq.read_table(out))
    for name in outs[0].column_names:
        if name.endswith("__pred"):
            assert outs[0].column(name).to_pylist() == outs[1].column(name).to_pylist(), name


def test_json_carries_warnings_diagnostics_and_the_per_class_table(make_files):
    emb, cls = make_files()
    result = invoke("classify", emb, "--classes", cls, "--label-col", "category", "--min-count", 3, "--json")
    summary = json.loads(result.stdout)
    assert {"warnings", "diagnostics", "per_class", "classes"} <= set(summary)
    assert [row["class"] for row in summary["per_class"]] == summary["classes"]
    assert summary["diagnostics"]["n_labelled"] == summary["n_items"]
    assert set(summary["diagnostics"]["fallback_pairs"]) == {"cotrain"}


def test_views_default_to_the_ones_recorded_in_the_metadata_and_keep_cols_carry_through(tmp_path, make_files):
    emb, cls = make_files()
    table = pq.read_table(emb).rename_columns(["product_id", "title_vec", "desc_vec", "category"])
    table = table.replace_schema_metadata({"pairclass.views": json.dumps(["title_vec", "desc_vec"])})
    path = tmp_path / "named.parquet"
    pq.write_table(table, path)
    out = tmp_path / "p.parquet"
    result = invoke("classify", path, "--classes", cls, "--keep-cols", "category", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["views"] == ["title_vec", "desc_vec"]
    assert pq.read_table(out).column("category").to_pylist() == table.column("category").to_pylist()


def test_labels_from_their_own_file_are_joined_on_the_id(tmp_path, make_files):
    emb, cls = make_files()
    items = pq.read_table(emb)
    ids, truth = items.column("product_id").to_pylist(), items.column("category").to_pylist()
    # ESCI-S style: category paths, another order, some products missing.
    order = np.random.default_rng(0).permutation(len(ids))[:70]
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"product_id": [ids[i] for i in order],
                             "path": pa.array([["All", truth[i]] for i in order], pa.list_(pa.string()))}), labels)
    out = tmp_path / "p.parquet"
    result = invoke("classify", emb.with_name("emb.parquet"), "--classes", cls, "--labels", labels, "--label-col",
                    "path", "--label-level", 1, "--method", "baseline", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["diagnostics"]["n_labelled"] == 70 and summary["diagnostics"]["n_unlabelled"] == 20
    joined = pq.read_table(out).column("path").to_pylist()
    assert joined == [truth[i] if i in set(order) else None for i in range(len(ids))]
    pred = np.array(pq.read_table(out).column("clip_image_features__baseline__pred").to_pylist())
    keep = np.array([j is not None for j in joined])
    assert summary["methods"]["baseline"]["accuracy"]["clip_image_features"] == pytest.approx(
        (pred[keep] == np.array(truth)[keep]).mean())
    dup = tmp_path / "dup.csv"
    dup.write_text("product_id,path\np0,a\np0,b\n")
    result = invoke("classify", emb, "--classes", cls, "--labels", dup, "--label-col", "path")
    assert (result.exit_code, result.stderr) == (2, f"Error: {dup}: product_id: an id has several labels, e.g. 'p0'\n")
