"""The committed demo data says how it was embedded, so a plain list of class names classifies it."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass.cli import app

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo.parquet"
VIEWS = ["product_name", "description"]


def test_demo_metadata_names_its_model_and_views():
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(DEMO).metadata.items()}
    assert json.loads(meta["pairclass.views"]) == VIEWS
    assert meta["pairclass.backend"] == "text" and meta["pairclass.model_arg"] == ""  # the default MiniLM
    assert json.loads(meta["pairclass.settings"])["columns"] == dict(zip(VIEWS, VIEWS))


def test_demo_classifies_against_class_names(tmp_path):
    pytest.importorskip("sentence_transformers")
    names = sorted(set(pq.read_table(DEMO, columns=["category"]).column("category").to_pylist()))
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    result = CliRunner().invoke(app, ["classify", str(DEMO), "--classes", str(tmp_path / "classes.txt"),
                                      "--views", ",".join(VIEWS), "--label-col", "category", "--method",
                                      "pairwise", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_items"] == 1050
    assert report["methods"]["baseline"]["accuracy"]["product_name"] > 1 / len(names) + 0.2
