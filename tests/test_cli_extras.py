"""Without the torch extras, the commands that need them say in one line what to install."""

import sys

import pytest
from typer.testing import CliRunner

from pairclass.cli import app

runner = CliRunner()


@pytest.fixture
def no_torch(monkeypatch):
    """This process as a core install sees it: ``import torch`` fails, and the torch parts import afresh."""
    monkeypatch.setitem(sys.modules, "torch", None)
    for name in [m for m in sys.modules if m.startswith(("pairclass.embed", "pairclass.dml"))]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize(
    "args, extra",
    [
        (["embed", "m.csv", "--out", "e.parquet"], "embed"),
        (["embed-classes", "c.txt", "--out", "c.parquet"], "embed"),
        (["train", "e.parquet", "--label-col", "y", "--out", "enc"], "dml"),
        (["evaluate-encoder", "e.parquet", "--label-col", "y", "--encoder", "enc"], "dml"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(tmp_path, monkeypatch, no_torch, args, extra):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: this command needs torch, which is not installed; install it with "
                             f"pip install 'pairclass[{extra}]'\n")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_choices_are_the_library_choices():
    pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from pairclass.cli import Backend, Precision
    from pairclass.embed.models import PRECISIONS
    from pairclass.embed.run import BACKENDS

    assert [b.value for b in Backend] == list(BACKENDS)
    assert [p.value for p in Precision] == ["auto", *PRECISIONS]
