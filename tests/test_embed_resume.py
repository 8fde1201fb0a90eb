"""The embed output is safe: one writer at a time, matching settings on resume, only new ids on a
rerun, unreadable chunks set aside, write failures in one line with the old file intact."""

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from embed_support import (  # noqa: E402
    TINY_CONFIG, Interrupt, count_images, interrupt_at, matrix, write_catalogue,
)
from pairclass.cli import app  # noqa: E402
from pairclass.embed import load_clip, run_embed  # noqa: E402
from pairclass.io.lock import exclusive, lock_path  # noqa: E402
from pairclass.embed.resume import errors_path, parts_dir  # noqa: E402
from pairclass.errors import InputError  # noqa: E402

VIEWS = ["clip_image_features", "clip_text_features"]
runner = CliRunner()


def embed_cli(manifest, out, *extra):
    return runner.invoke(app, ["embed", str(manifest), "--out", str(out), "--model", str(TINY_CONFIG),
                               "--random-weights", "--device", "cpu", "--workers", "0", *map(str, extra)])


def grow(manifest, n):
    """Rewrite the catalogue's manifest with n items (the first ones unchanged)."""
    return write_catalogue(Path(manifest).parent, n)


def test_a_second_run_on_the_same_output_is_refused(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 6)
    out = tmp_path / "e.parquet"
    paused, resume = threading.Event(), threading.Event()

    def progress(done, total):
        if done == 2:
            paused.set()
            resume.wait(30)

    first = threading.Thread(target=run_embed, args=(manifest, out),
                             kwargs=dict(encoder=enc, batch_size=2, workers=0, progress=progress))
    first.start()
    assert paused.wait(30)
    try:
        with pytest.raises(InputError, match=r"e\.parquet: another run is writing this output; wait for it to "
                                             "finish or pass another --out$"):
            run_embed(manifest, out, encoder=enc, workers=0)
    finally:
        resume.set()
        first.join()
    assert pq.read_table(out).column("product_id").to_pylist() == [f"p{i:03d}" for i in range(6)]
    assert not lock_path(out).exists()


def test_the_cli_refuses_a_locked_output_in_one_line(tmp_path):
    manifest = write_catalogue(tmp_path, 2)
    out = tmp_path / "e.parquet"
    with exclusive(out):
        result = embed_cli(manifest, out)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {out}: another run is writing this output; wait for it to finish or pass " \
                            "another --out\n"


def test_a_resume_with_another_precision_is_refused(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 4)
    out = tmp_path / "e.parquet"
    with pytest.raises(Interrupt):
        run_embed(manifest, out, encoder=enc, batch_size=2, chunk_rows=2, workers=0, progress=interrupt_at(2))
    bf16 = load_clip(str(TINY_CONFIG), random_weights=True, device="cpu", precision="bf16")
    with pytest.raises(InputError) as e:
        run_embed(manifest, out, encoder=bf16, batch_size=2, workers=0)
    assert str(e.value) == (f'{parts_dir(out)}: holds chunks of a run with other settings (precision "fp32", now '
                            '"bf16"); rerun with the same settings or delete the folder')


def test_a_finished_rerun_embeds_only_the_new_ids(tmp_path, enc, monkeypatch):
    manifest = write_catalogue(tmp_path, 5)
    out = tmp_path / "e.parquet"
    run_embed(manifest, out, encoder=enc, workers=0, keep_cols=["label"])
    before = pq.read_table(out)
    seen = count_images(monkeypatch, enc)
    result = run_embed(grow(manifest, 8), out, encoder=enc, workers=0, keep_cols=["label"])
    assert sum(seen) == 3 == result.n_embedded
    after = pq.read_table(out)
    assert after.column("product_id").to_pylist() == [f"p{i:03d}" for i in range(8)]
    assert after.slice(0, 5).equals(before)  # the old rows, bit for bit
    monkeypatch.undo()
    run_embed(manifest, tmp_path / "fresh.parquet", encoder=enc, workers=0)
    for col in VIEWS:
        np.testing.assert_allclose(matrix(after, col), matrix(pq.read_table(tmp_path / "fresh.parquet"), col),
                                   atol=1e-6)


def test_a_finished_rerun_keeps_the_earlier_failures(tmp_path, enc, monkeypatch):
    manifest = write_catalogue(tmp_path, 3)
    (tmp_path / "img/001.jpg").unlink()
    out = tmp_path / "e.parquet"
    run_embed(manifest, out, encoder=enc, workers=0)
    seen = count_images(monkeypatch, enc)
    result = run_embed(grow(manifest, 4), out, encoder=enc, workers=0)  # rewrites img/001.jpg too
    assert sum(seen) == 1 and result.n_failed == 1
    assert pq.read_table(out).column(VIEWS[0]).to_pylist()[1] is None
    errors = pacsv.read_csv(errors_path(out)).to_pylist()
    assert errors == [{"id": "p001", "column": "image", "source": "img/001.jpg", "reason": "file not found"}]
    # ...and retried on request
    result = run_embed(manifest, out, encoder=enc, workers=0, retry_errors=True)
    assert sum(seen) == 2 and result.n_failed == 0 and not errors_path(out).exists()


@pytest.mark.parametrize("case", ["other settings", "no settings", "ids not in the manifest"])
def test_a_finished_output_that_does_not_match_is_refused_and_kept(tmp_path, enc, case):
    manifest = write_catalogue(tmp_path, 3)
    out = tmp_path / "e.parquet"
    if case == "no settings":
        pq.write_table(pa.table({"product_id": ["a"]}), out)
        message = "exists and records no pairclass embed settings"
    else:
        run_embed(grow(manifest, 4) if case == "ids not in the manifest" else manifest, out, encoder=enc,
                  workers=0, text_cols=None if case == "other settings" else "auto")
        write_catalogue(tmp_path, 3)
        message = ('was embedded with other settings (columns {"image": "clip_image_features"}, now {"image": '
                   '"clip_image_features", "title": "clip_text_features"}); rerun with the same settings'
                   if case == "other settings" else "holds 1 id(s) not in the manifest, e.g. 'p003'")
    old = out.read_bytes()
    with pytest.raises(InputError) as e:
        run_embed(manifest, out, encoder=enc, workers=0)
    assert str(e.value) == f"{out}: {message}; delete it or pass another --out"
    assert out.read_bytes() == old


def test_an_unreadable_chunk_is_set_aside_and_embedded_again(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 6)
    out = tmp_path / "e.parquet"
    with pytest.raises(Interrupt):
        run_embed(manifest, out, encoder=enc, batch_size=2, chunk_rows=2, workers=0, progress=interrupt_at(3))
    chunk = parts_dir(out) / "chunk-000001.parquet"
    chunk.write_bytes(chunk.read_bytes()[:100])  # cut short
    with pytest.warns(UserWarning, match=r"chunk-000001\.parquet: unreadable chunk \(.*\); set aside as "
                                         r"chunk-000001\.parquet\.unreadable, its items are embedded again"):
        result = run_embed(manifest, out, encoder=enc, batch_size=2, workers=0)
    assert result.n_embedded == 4
    table = pq.read_table(out)
    assert table.column("product_id").to_pylist() == [f"p{i:03d}" for i in range(6)]
    run_embed(manifest, tmp_path / "fresh.parquet", encoder=enc, workers=0)
    np.testing.assert_allclose(matrix(table, VIEWS[0]), matrix(pq.read_table(tmp_path / "fresh.parquet"), VIEWS[0]),
                               atol=1e-6)


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path):
    manifest = write_catalogue(tmp_path, 2)
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder.parquet").mkdir()
    cases = {
        tmp_path / "file.txt" / "e.parquet": "cannot write: a parent folder is a file",
        tmp_path / "folder.parquet": "is a directory; pass a file path as the output",
        tmp_path / ("a" * 250 + ".parquet"): "cannot write: File name too long",
    }
    for out, message in cases.items():
        result = embed_cli(manifest, out)
        assert result.exit_code == 2, out
        assert result.stderr == f"Error: {out}: {message}\n"


def test_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    manifest = write_catalogue(tmp_path, 2)
    locked = tmp_path / "ro"
    locked.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # root ignores permission bits, so refuse creates here
        if Path(path).parent == locked and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = embed_cli(manifest, locked / "e.parquet")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {locked / 'e.parquet'}: cannot write: Permission denied\n"


def test_a_full_disk_at_the_final_write_keeps_the_old_file(tmp_path, monkeypatch):
    manifest = write_catalogue(tmp_path, 3)
    out = tmp_path / "e.parquet"
    assert embed_cli(manifest, out).exit_code == 0
    old = out.read_bytes()
    real_write = pq.write_table

    def full_disk(table, where, *args, **kwargs):
        if Path(where).name.startswith(f".{out.name}."):
            Path(where).write_bytes(b"PAR1 half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_disk)
    result = embed_cli(grow(manifest, 4), out)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {out}: cannot write: No space left on device\n"
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()
    result = embed_cli(manifest, out, "--json")  # the chunks survived: nothing to embed again
    assert result.exit_code == 0, result.stderr
    assert '"n_embedded": 0' in result.stdout and pq.read_table(out).num_rows == 4


KILL_DURING_FINAL_WRITE = """
import os, signal, sys
from pathlib import Path
import pyarrow.parquet as pq
from pairclass.embed import load_clip, run_embed

manifest, out = map(Path, sys.argv[1:3])
real_write = pq.write_table

def killed(table, where, *args, **kwargs):
    if Path(where).name.startswith(f".{out.name}."):
        Path(where).write_bytes(b"PAR1 half")
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(table, where, *args, **kwargs)

pq.write_table = killed
run_embed(manifest, out, encoder=load_clip(sys.argv[3], random_weights=True, device="cpu"), workers=0)
"""


def test_a_kill_during_the_final_write_is_cleaned_up_by_the_next_run(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 3)
    out = tmp_path / "e.parquet"
    done = subprocess.run([sys.executable, "-c", KILL_DURING_FINAL_WRITE, str(manifest), str(out), str(TINY_CONFIG)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == -9, done.stderr
    assert len(list(tmp_path.glob(".e.parquet.*.tmp"))) == 1
    assert lock_path(out).exists() and not out.exists()  # a stale lock file, which locks nothing
    result = run_embed(manifest, out, encoder=enc, workers=0)
    assert result.n_embedded == 0 and pq.read_table(out).num_rows == 3
    assert list(tmp_path.glob(".e.parquet.*")) == []
