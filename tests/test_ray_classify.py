"""classify with --engine ray gives the local engine's predictions and metrics, on a local cluster
and on two nodes (results crossing between them)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass import PairwiseClassifier, run_classify
from pairclass.cli import app
from pairclass.engines import get_engine
from pairclass.errors import InputError
from pairclass.io import MemorySink
from pairclass.methods import METHODS
from pairclass.pipeline import classify

from conftest import embedding_array, predictions
from ray_support import alive_nodes, cluster  # noqa: F401  (the fixture)
from test_pipeline import VIEWS, class_file, data, write_shards

runner = CliRunner()
STREAMING = [m for m, spec in METHODS.items() if spec.max_items is None]
EST = dict(k=4, min_count=3)


def shards(tmp_path, seed=0):
    views, T, y = data(seed=seed)
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "shards", views, y, names, [7, 50, 51, 90])
    return folder, class_file(tmp_path / "classes.parquet", T, names), names


def by_id(table):
    return table.take(pa.compute.sort_indices(table, [("product_id", "ascending")]))


def test_every_streaming_method_predicts_exactly_as_the_local_engine(cluster, tmp_path):
    folder, classes, _ = shards(tmp_path)
    runs = {}
    for engine in ("local", "ray"):
        runs[engine] = run_classify(folder, classes, label_col="category", methods=STREAMING, batch_rows=13,
                                    estimator=PairwiseClassifier(**EST), out=tmp_path / f"{engine}/",
                                    engine=get_engine(engine))
    local, ray_ = (by_id(pq.read_table(tmp_path / e)) for e in ("local", "ray"))
    assert local.num_rows == ray_.num_rows == 120
    assert ray_.column("product_id").equals(local.column("product_id"))
    for m in STREAMING:
        got, expected = predictions(ray_, m, VIEWS), predictions(local, m, VIEWS)
        for v in VIEWS:
            np.testing.assert_array_equal(got[v], expected[v], err_msg=f"{m} {v}")
    gmm = {e: r.methods.pop("cotrain_gmm") for e, r in runs.items()}
    assert runs["ray"].methods == runs["local"].methods
    assert runs["ray"].per_class == runs["local"].per_class
    assert gmm["ray"]["agreement_f1"] == pytest.approx(gmm["local"]["agreement_f1"])
    assert runs["ray"].diagnostics == runs["local"].diagnostics
    if cluster == "two nodes":
        assert alive_nodes() == 2


def test_a_single_output_file_keeps_the_input_order(cluster, tmp_path):
    folder, classes, _ = shards(tmp_path, seed=1)
    for engine in ("local", "ray"):
        run_classify(folder, classes, methods=["pairwise"], batch_rows=16, estimator=PairwiseClassifier(**EST),
                     out=tmp_path / f"{engine}.parquet", engine=get_engine(engine))
    # the same rows in the same order (a dictionary column's dictionary follows the batching)
    assert pq.read_table(tmp_path / "ray.parquet").to_pylist() == pq.read_table(tmp_path / "local.parquet").to_pylist()


def test_the_cli_summary_equals_the_local_one(cluster, tmp_path):
    folder, classes, _ = shards(tmp_path, seed=2)
    args = ["classify", str(folder), "--classes", str(classes), "--label-col", "category", "--k", "4",
            "--min-count", "3", "--batch-rows", "20", "--pairwise", "--json"]
    local = runner.invoke(app, args)
    ray_ = runner.invoke(app, [*args, "--engine", "ray", "--workers", "2"])
    assert ray_.exit_code == 0, ray_.stderr
    assert json.loads(ray_.stdout)["methods"] == json.loads(local.stdout)["methods"]


def test_a_bad_row_in_a_worker_is_one_error_line(cluster, tmp_path):
    folder, classes, _ = shards(tmp_path, seed=3)
    part = folder / "part-002.parquet"
    table = pq.read_table(part)
    bad = embedding_array(np.full((1, 12), np.nan))
    pq.write_table(table.set_column(1, VIEWS[0], bad.cast(table.schema.field(VIEWS[0]).type)), part)
    result = runner.invoke(app, ["classify", str(folder), "--classes", str(classes), "--engine", "ray"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"Error: {part}: {VIEWS[0]}: 1 row(s) with NaN or infinite values, "
                                              "first at row 0")


def test_what_needs_row_positions_is_refused_in_one_line(cluster, tmp_path):
    folder, classes, _ = shards(tmp_path, seed=4)
    result = runner.invoke(app, ["classify", str(folder), "--classes", str(classes), "--method", "transclip",
                                 "--engine", "ray"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: transclip holds every item in memory, which --engine ray does not do; use a "
                             "streaming method or --engine local\n")
    result = runner.invoke(app, ["classify", str(folder), "--classes", str(classes), "--engine", "ray", "--report",
                                 str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "a report's examples are chosen by the rows' positions" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_the_local_cluster_runs_its_workers_at_the_drivers_priority(cluster):
    """Ray's default (nice 15) starves the workers on a machine where anything else is busy."""
    import os

    import ray

    if cluster != "local":
        pytest.skip("only a cluster the engine starts itself is configured by it")

    @ray.remote
    def niceness():
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def test_arrays_in_memory_are_not_a_ray_source(cluster):
    views, T, y = data()
    from pairclass.io import ArraySource

    with pytest.raises(InputError, match=r"^<arrays>: --engine ray reads parquet files"):
        classify(ArraySource(views), PairwiseClassifier(**EST), T, [f"c{i}" for i in range(len(T))],
                 methods=["baseline"], sink=MemorySink(), engine=get_engine("ray"))


@pytest.mark.parametrize("command", ["classify", "embed"])
def test_without_ray_the_engine_names_the_extra(monkeypatch, tmp_path, command):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    folder, classes, _ = shards(tmp_path)
    if command == "classify":
        args = ["classify", str(folder), "--classes", str(classes)]
    else:
        pytest.importorskip("open_clip")
        (tmp_path / "m.csv").write_text("product_id,title\na,red shirt\n")
        args = ["embed", str(tmp_path / "m.csv"), "--out", str(tmp_path / "e.parquet")]
    result = runner.invoke(app, [*args, "--engine", "ray"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: --engine ray needs ray, which is not installed; install it with "
                             "pip install 'pairclass[ray]'\n")


def test_a_ray_address_needs_the_ray_engine(tmp_path):
    folder, classes, _ = shards(tmp_path)
    result = runner.invoke(app, ["classify", str(folder), "--classes", str(classes), "--ray-address", "auto"])
    assert result.exit_code == 2
    assert result.stderr == "Error: --ray-address needs --engine ray\n"
