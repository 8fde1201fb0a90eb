"""`pairclass embed` and `pairclass embed-classes` end to end, into `pairclass classify`."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from embed_support import TINY_CONFIG, write_catalogue  # noqa: E402
from pairclass.cli import app  # noqa: E402
from pairclass.embed import load_clip, run_embed, run_embed_classes  # noqa: E402

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_embed_then_classes_then_classify(tmp_path):
    manifest = write_catalogue(tmp_path, 12)
    emb, classes = tmp_path / "emb.parquet", tmp_path / "classes.parquet"
    result = invoke("embed", manifest, "--out", emb, "--model", TINY_CONFIG, "--random-weights", "--device", "cpu",
                    "--workers", 0, "--batch-size", 5, "--keep-cols", "label", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_written"] == summary["n_items"] == 12 and summary["n_failed"] == 0
    assert summary["columns"] == {"image": "clip_image_features", "title": "clip_text_features"}

    # the CLI and the library give the same rows (the random init is seeded)
    lib = tmp_path / "lib.parquet"
    run_embed(manifest, lib, encoder=load_clip(str(TINY_CONFIG), random_weights=True, device="cpu"), workers=0,
              keep_cols=["label"])
    cli_table, lib_table = pq.read_table(emb), pq.read_table(lib)
    assert cli_table.schema.equals(lib_table.schema)
    # The CLI also records how to reload its model; a library call with a ready encoder cannot.
    cli_meta, lib_meta = dict(cli_table.schema.metadata), dict(lib_table.schema.metadata)
    assert cli_meta.pop(b"pairclass.model_arg") == str(TINY_CONFIG.resolve()).encode()
    assert cli_meta == lib_meta
    assert cli_table.select(["product_id", "label"]).equals(lib_table.select(["product_id", "label"]))
    for view in ("clip_image_features", "clip_text_features"):
        np.testing.assert_allclose(np.asarray(cli_table.column(view).to_pylist()),
                                   np.asarray(lib_table.column(view).to_pylist()), atol=1e-5)

    (tmp_path / "classes.txt").write_text("shirt\nshoe\n")
    result = invoke("embed-classes", tmp_path / "classes.txt", "--out", classes, "--model", TINY_CONFIG,
                    "--random-weights", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["n_classes"] == 2
    lib_classes = run_embed_classes(tmp_path / "classes.txt", tmp_path / "lib_classes.parquet",
                                    encoder=load_clip(str(TINY_CONFIG), random_weights=True, device="cpu"))
    assert lib_classes.dim == 64
    assert pq.read_table(classes).equals(pq.read_table(tmp_path / "lib_classes.parquet"))

    result = invoke("classify", emb, "--classes", classes, "--label-col", "label", "--min-count", 2, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_items"] == 12
    assert report["views"] == ["clip_image_features", "clip_text_features"]

    # A names-only class file is embedded by classify itself, with the model recorded in emb.parquet
    # and the default templates: the same report as going through embed-classes first.
    result = invoke("classify", emb, "--classes", tmp_path / "classes.txt", "--label-col", "label",
                    "--min-count", 2, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == report
    # ...but not for an embedding file written from a ready encoder, which cannot be reloaded.
    result = invoke("classify", lib, "--classes", tmp_path / "classes.txt")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path / 'classes.txt'}: no 'embedding' column, and the embedding file does not say "
        "which model made it; embed the class prompts first (pairclass embed-classes)\n")


def test_human_output_reports_failures(tmp_path):
    manifest = write_catalogue(tmp_path, 3)
    (tmp_path / "img/001.jpg").unlink()
    result = invoke("embed", manifest, "--out", tmp_path / "emb.parquet", "--model", TINY_CONFIG,
                    "--random-weights", "--device", "cpu", "--workers", 0)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "failed: 1 x file not found" in result.stderr
    assert f"wrote 1 failures to {tmp_path / 'emb.errors.csv'}" in " ".join(result.stderr.split())
    assert pacsv.read_csv(tmp_path / "emb.errors.csv").column("id").to_pylist() == ["p001"]


def test_text_col_mapping(tmp_path):
    pacsv.write_csv(pa.table({"product_id": ["a", "b"], "name": ["red shoe", "hat"], "desc": ["x", "y"]}),
                    tmp_path / "m.csv")
    result = invoke("embed", tmp_path / "m.csv", "--out", tmp_path / "e.parquet", "--model", TINY_CONFIG,
                    "--random-weights", "--device", "cpu", "--text-col", "name=title_vec,desc", "--json")
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(tmp_path / "e.parquet").column_names == ["product_id", "title_vec", "desc"]


@pytest.mark.parametrize(
    "setup, args, line",
    [
        (None, ["embed", "{tmp}/nope.csv", "--out", "{tmp}/e.parquet"], "Error: {tmp}/nope.csv: file not found"),
        ("empty", ["embed", "{tmp}/m.csv", "--out", "{tmp}/e.parquet"], "Error: {tmp}/m.csv: no rows"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--text-col", "name"],
         "Error: {tmp}/manifest.csv: name: column not found (columns: product_id, image, title, label)"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--model", "{tmp}/bad.json"],
         "Error: {tmp}/bad.json: unreadable model config: Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1)"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.csv"],
         "Error: {tmp}/e.csv: output must be a .parquet file"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--precision", "fp8"],
         "Error: Invalid value for '--precision': Value error, 'fp8' is not one of 'auto', 'fp32', 'fp16', 'bf16'."),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--backend", "image"],
         "Error: Invalid value for '--backend': Value error, 'image' is not one of 'clip', 'text'."),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--workers", "-1"],
         "Error: workers must be at least 0, got -1"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--timeout", "-1"],
         "Error: timeout must be more than 0 seconds, got -1.0"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--retries", "-1"],
         "Error: retries must be at least 0, got -1"),
        ("catalogue", ["embed", "{tmp}/manifest.csv", "--out", "{tmp}/e.parquet", "--pretrained", "openai",
                       "--random-weights"],
         "Error: openai brings its own weights; drop --random-weights"),
        ("list ids", ["embed", "{tmp}/m.parquet", "--out", "{tmp}/e.parquet"],
         "Error: {tmp}/m.parquet: product_id: ids must be strings or integers, got list<element: string>"),
        ("list ids", ["embed", "{tmp}/m.parquet", "--out", "{tmp}/m.parquet", "--id-col", "sku"],
         "Error: {tmp}/m.parquet: is the manifest; pass another output path"),
        (None, ["embed-classes", "{tmp}/none.txt", "--out", "{tmp}/c.parquet"], "Error: {tmp}/none.txt: file not found"),
        ("classes", ["embed-classes", "{tmp}/classes.txt", "--out", "{tmp}/c.parquet", "--templates",
                     "{tmp}/templates.txt", "--model", TINY_CONFIG],
         "Error: {tmp}/templates.txt: template 1 'a photo' must contain {{}} exactly once"),
    ],
)
def test_bad_inputs_exit_2(tmp_path, setup, args, line):
    if setup == "catalogue":
        write_catalogue(tmp_path, 2)
        (tmp_path / "bad.json").write_text("{not json")
    if setup == "classes":
        (tmp_path / "classes.txt").write_text("a\nb\n")
        (tmp_path / "templates.txt").write_text("a photo\n")
    if setup == "empty":
        (tmp_path / "m.csv").write_text("product_id,image,title\n")
    if setup == "list ids":
        pq.write_table(pa.table({"product_id": [["a"], ["b"]], "sku": ["a", "b"], "title": ["x", "y"]}),
                       tmp_path / "m.parquet")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = invoke(*[a.format(tmp=tmp_path) if isinstance(a, str) else a for a in args])
    assert result.exit_code == 2
    assert result.stderr == line.format(tmp=tmp_path) + "\n"
    assert result.stdout == ""
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written


def test_embedded_items_classify_with_the_library(tmp_path):
    from pairclass import PairwiseClassifier, run_classify

    manifest = write_catalogue(tmp_path, 8)
    enc = load_clip(str(TINY_CONFIG), random_weights=True, device="cpu")
    run_embed(manifest, tmp_path / "e.parquet", encoder=enc, workers=0, keep_cols=["label"])
    (tmp_path / "c.txt").write_text("shirt\nshoe\nhat\n")
    run_embed_classes(tmp_path / "c.txt", tmp_path / "c.parquet", encoder=enc, templates=["a {}", "{}"])
    result = run_classify(tmp_path / "e.parquet", tmp_path / "c.parquet", label_col="label",
                          estimator=PairwiseClassifier(min_count=2))
    assert result.n_items == 8
    table = pq.read_table(tmp_path / "e.parquet")
    T = np.asarray(pq.read_table(tmp_path / "c.parquet").column("embedding").to_pylist())
    X = np.asarray(table.column("clip_image_features").to_pylist())
    baseline = np.array(["shirt", "shoe", "hat"])[(X @ T.T).argmax(1)]
    assert result.predictions.column("clip_image_features__baseline__pred").to_pylist() == baseline.tolist()
