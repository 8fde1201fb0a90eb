"""audit with --engine ray (the PCA sample and the projection as Ray Data jobs) gives the local
engine's issues table, on a local cluster and on two nodes."""

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from pairclass.audit import run_audit
from pairclass.cli import app
from pairclass.engines import get_engine

from ray_support import alive_nodes, cluster  # noqa: F401  (the fixture)
from test_audit import noisy_items, write_files


def test_the_issues_table_is_the_local_engines(cluster, tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, views, T, given, extra={"title": [f"title {i}" for i in range(given.size)]})
    shards = tmp_path / "shards"
    shards.mkdir()
    table = pq.read_table(emb)
    for part, (start, stop) in enumerate([(0, 70), (70, 71), (71, 260), (260, given.size)]):
        pq.write_table(table.slice(start, stop - start), shards / f"part-{part}.parquet")
    # dims below the views' width: the PCA sample's scan runs too
    options = dict(label_col="category", views=["image", "text"], keep_cols=["title"], dims=8, seed=3)
    local = run_audit(shards, cls, engine=get_engine("local"), **options)
    on_ray = run_audit(shards, cls, engine=get_engine("ray"), **options)
    assert on_ray.items.equals(local.items)
    assert local.n_flagged > 0
    args = ["audit", str(shards), "--classes", str(cls), "--label-col", "category", "--views", "image,text",
            "--keep-cols", "title", "--dims", "8", "--seed", "3", "--json"]
    res = CliRunner().invoke(app, [*args, "--engine", "ray", "--out", str(tmp_path / "issues.parquet")])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == local.to_json(20)
    assert pq.read_table(tmp_path / "issues.parquet").equals(local.items)
    if cluster == "two nodes":
        assert alive_nodes() == 2
