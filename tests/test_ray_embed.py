"""embed --engine ray: decoding tasks and a model actor pool give the local vectors, resume after an
interrupt, and record a corrupt image; on a local cluster and on two nodes."""

import json

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass.cli import app

from embed_support import TINY_CONFIG, Interrupt, interrupt_at, matrix, write_catalogue
from ray_support import cluster  # noqa: F401  (the fixture)

pytest.importorskip("open_clip")
runner = CliRunner()
MODEL = dict(model=str(TINY_CONFIG), random_weights=True, device="cpu", precision="fp32", batch_size=4)
VIEWS = ["clip_image_features", "clip_text_features"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """12 items, the fifth image corrupt, and their local embedding (the reference)."""
    from pairclass.embed import run_embed

    folder = tmp_path_factory.mktemp("catalogue")
    manifest = write_catalogue(folder, 12)
    (folder / "img" / "004.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    local = run_embed(manifest, folder / "local.parquet", **MODEL, workers=0)
    assert local.n_failed == 1
    return manifest, pq.read_table(folder / "local.parquet"), (folder / "local.errors.csv").read_text()


def assert_same_vectors(table, reference):
    assert table.column("product_id").to_pylist() == reference.column("product_id").to_pylist()
    for view in VIEWS:
        assert table.column(view).is_null().to_pylist() == reference.column(view).is_null().to_pylist()
        np.testing.assert_allclose(matrix(table.filter(table.column(view).is_valid()), view),
                                   matrix(reference.filter(reference.column(view).is_valid()), view), atol=1e-5)


def test_the_cli_embeds_like_the_local_engine_and_records_the_corrupt_image(cluster, catalogue, tmp_path):
    manifest, reference, errors = catalogue
    out = tmp_path / "ray.parquet"
    result = runner.invoke(app, ["embed", str(manifest), "--out", str(out), "--model", str(TINY_CONFIG),
                                 "--random-weights", "--device", "cpu", "--precision", "fp32", "--batch-size", "4",
                                 "--engine", "ray", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["n_embedded"], summary["n_failed"]) == (12, 1)
    assert summary["failure_reasons"] == {"cannot decode image": 1}
    assert_same_vectors(pq.read_table(out), reference)
    assert (tmp_path / "ray.errors.csv").read_text() == errors
    assert pacsv.read_csv(tmp_path / "ray.errors.csv").column("id").to_pylist() == ["p004"]


def test_a_rerun_after_an_interrupt_embeds_only_what_was_lost(cluster, catalogue, tmp_path):
    from pairclass.embed import run_embed
    from pairclass.embed.resume import parts_dir

    manifest, reference, errors = catalogue
    out = tmp_path / "ray.parquet"
    with pytest.raises(Interrupt):  # after the job wrote its chunks, before the output
        run_embed(manifest, out, **MODEL, engine="ray", progress=interrupt_at(2))
    chunks = sorted(parts_dir(out).glob("chunk-*.parquet"))
    assert len(chunks) >= 2 and not out.exists()
    lost = pq.read_table(chunks[0]).num_rows
    chunks[0].unlink()  # a chunk the crash never wrote
    cut = pq.read_table(chunks[1]).num_rows
    chunks[1].write_bytes(chunks[1].read_bytes()[:100])  # and one it cut short
    with pytest.warns(UserWarning, match="unreadable chunk"):
        again = run_embed(manifest, out, **MODEL, engine="ray")
    assert again.n_embedded == lost + cut < 12
    assert_same_vectors(pq.read_table(out), reference)
    assert (tmp_path / "ray.errors.csv").read_text() == errors
    assert run_embed(manifest, out, **MODEL, engine="ray").n_embedded == 0  # finished: nothing left to embed
