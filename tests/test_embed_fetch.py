"""Bounded, robust image fetching: whole-download timeouts, broken servers and URLs, special local files."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from embed_support import image_server, jpeg_bytes, raw_server  # noqa: E402
from pairclass.embed import FetchLimits, run_embed  # noqa: E402
from pairclass.embed.images import ImageFailure, decode_image, fetch_bytes  # noqa: E402
from pairclass.embed.resume import errors_path  # noqa: E402
from pairclass.errors import InputError  # noqa: E402


def test_timeout_bounds_the_whole_download(tmp_path):
    # A body trickled at a byte every 0.05 s keeps every read inside a per-read timeout of 0.5 s;
    # only a bound on the whole download stops it. The full body would take 10 s.
    with image_server({}) as (base, hits):
        with pytest.raises(ImageFailure, match=r"^timed out after 0\.5 s \(after 1 attempts\)$"):
            fetch_bytes(f"{base}/trickle.jpg", FetchLimits(timeout=0.5, retries=0))
        assert 0 < hits["trickled bytes"] < 100


def test_one_bad_url_never_stops_the_run(tmp_path, enc):
    bodies = {"/a b.jpg": jpeg_bytes(1), "/café.jpg": jpeg_bytes(2), "/ok.jpg": jpeg_bytes(3)}
    replies = {
        "garbage.jpg": b"SPAM SPAM SPAM\r\n\r\n",
        "long-header.jpg": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    }
    with image_server(bodies) as (base, _), raw_server(replies) as raw:
        urls = [f"{base}/a b.jpg", f"{base}/café.jpg", f"{raw}/garbage.jpg", f"{raw}/long-header.jpg",
                f"{base}/ok.jpg"]
        pacsv.write_csv(pa.table({"product_id": list("abcde"), "image": urls}), tmp_path / "m.csv")
        result = run_embed(tmp_path / "m.csv", tmp_path / "e.parquet", encoder=enc, workers=0,
                           limits=FetchLimits(timeout=2, retries=0))
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column("product_id").to_pylist() == ["a", "b", "e"]
    # the quoted URLs fetched the right files
    X = np.asarray(table.column("clip_image_features").to_pylist(), np.float32)
    direct = enc.encode_images([decode_image(bodies["/café.jpg"], FetchLimits())])[0].numpy()
    np.testing.assert_allclose(X[1], direct, atol=1e-5)
    reasons = {e["id"]: e["reason"] for e in pacsv.read_csv(errors_path(tmp_path / "e.parquet")).to_pylist()}
    assert reasons == {
        "c": "bad HTTP response (BadStatusLine): SPAM SPAM SPAM",
        "d": "bad HTTP response (LineTooLong): got more than 65536 bytes when reading header line",
    }
    assert result.failure_reasons == {"bad HTTP response (BadStatusLine)": 1, "bad HTTP response (LineTooLong)": 1}


def test_byte_cap_holds_for_files_that_are_not_regular(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    limits = FetchLimits(max_bytes=1000)
    for source in ("/dev/zero", str(fifo)):
        with pytest.raises(ImageFailure, match="^not a regular file$"):
            fetch_bytes(source, limits)
    (tmp_path / "big.jpg").write_bytes(b"x" * 1001)
    with pytest.raises(ImageFailure, match=r"^too large: 1001 bytes > max_bytes 1000$"):
        fetch_bytes("big.jpg", limits, root=tmp_path)
    for source in ("", "  "):
        with pytest.raises(ImageFailure, match="^no image$"):
            fetch_bytes(source, limits, root=tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(timeout=-1), "timeout must be more than 0 seconds, got -1"),
        (dict(timeout=0), "timeout must be more than 0 seconds, got 0"),
        (dict(retries=-1), "retries must be at least 0, got -1"),
        (dict(max_bytes=0), "max_bytes must be at least 1, got 0"),
        (dict(max_downloads=0), "max_downloads must be at least 1, got 0"),
        (dict(backoff=-0.5), "backoff must be at least 0, got -0.5"),
    ],
)
def test_limits_out_of_range_are_refused(kwargs, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        FetchLimits(**kwargs)
