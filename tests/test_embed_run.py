"""run_embed and run_embed_classes with a tiny random open_clip model: values, failures, URLs, resume."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from embed_support import (  # noqa: E402
    TINY_CONFIG, Interrupt, count_images, image_server, interrupt_at, jpeg_bytes, matrix, write_catalogue,
)
from pairclass import __version__  # noqa: E402
from pairclass.embed import FetchLimits, load_clip, run_embed, run_embed_classes  # noqa: E402
from pairclass.embed.images import decode_image  # noqa: E402
from pairclass.embed.resume import errors_path, parts_dir  # noqa: E402
from pairclass.errors import InputError  # noqa: E402
from pairclass.io import read_classes, read_embeddings  # noqa: E402

VIEWS = ["clip_image_features", "clip_text_features"]


def test_embeds_images_and_texts_row_by_row(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 7)
    out = tmp_path / "emb.parquet"
    result = run_embed(manifest, out, encoder=enc, batch_size=3, workers=0)
    table = pq.read_table(out)
    assert table.column_names == ["product_id", *VIEWS]
    assert table.column("product_id").to_pylist() == [f"p{i:03d}" for i in range(7)]
    assert result.n_items == result.n_written == result.n_embedded == 7 and result.n_failed == 0
    images, texts = matrix(table, VIEWS[0]), matrix(table, VIEWS[1])
    assert images.shape == texts.shape == (7, 64)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    # each row is its own item: embed items one at a time and compare
    titles = pacsv.read_csv(manifest).column("title").to_pylist()
    for i in (0, 4, 6):
        image = decode_image((tmp_path / f"img/{i:03d}.jpg").read_bytes(), FetchLimits())
        np.testing.assert_allclose(images[i], enc.encode_images([image])[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(texts[i], enc.encode_texts([titles[i]])[0].numpy(), atol=1e-5)
    meta = table.schema.metadata
    assert meta[b"pairclass.model"] == b"tiny-clip" and meta[b"pairclass.dim"] == b"64"
    assert meta[b"pairclass.pretrained"] == b"" and meta[b"pairclass.version"] == __version__.encode()
    assert json.loads(meta[b"pairclass.views"]) == VIEWS
    assert json.loads(meta[b"pairclass.settings"]) == {
        "backend": "clip", "model": "tiny-clip", "pretrained": "", "precision": "fp32", "image_size": [32, 32],
        "dim": 64, "id_col": "product_id", "columns": {"image": VIEWS[0], "title": VIEWS[1]}, "keep_cols": [],
    }
    assert not parts_dir(out).exists() and not errors_path(out).exists()


def test_same_image_same_vector_and_seeded_model(tmp_path, enc):
    manifest = tmp_path / "m.csv"
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(3))
    pacsv.write_csv(pa.table({"product_id": ["x", "y"], "image": ["a.jpg", str(tmp_path / "a.jpg")]}), manifest)
    run_embed(manifest, tmp_path / "e.parquet", encoder=enc, workers=0)
    X = matrix(pq.read_table(tmp_path / "e.parquet"), VIEWS[0])
    np.testing.assert_array_equal(X[0], X[1])
    again = load_clip(str(TINY_CONFIG), random_weights=True, device="cpu")
    run_embed(manifest, tmp_path / "f.parquet", encoder=again, workers=0)
    np.testing.assert_array_equal(X, matrix(pq.read_table(tmp_path / "f.parquet"), VIEWS[0]))


def test_worker_processes_give_the_same_rows(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 9)
    run_embed(manifest, tmp_path / "a.parquet", encoder=enc, batch_size=4, workers=0)
    run_embed(manifest, tmp_path / "b.parquet", encoder=enc, batch_size=4, workers=2)
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.column("product_id").equals(b.column("product_id"))
    np.testing.assert_allclose(matrix(a, VIEWS[0]), matrix(b, VIEWS[0]), atol=1e-6)


def test_failed_images_keep_their_row_with_a_null_vector(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 6)
    (tmp_path / "img/001.jpg").write_bytes(b"plain text, not an image")
    (tmp_path / "img/003.jpg").unlink()
    good = jpeg_bytes(7, (64, 48))
    (tmp_path / "img/004.jpg").write_bytes(good[: len(good) // 2])  # truncated
    table = pacsv.read_csv(manifest)
    pacsv.write_csv(table.set_column(1, "image", pa.array(table.column("image").to_pylist()[:5] + [None])), manifest)
    result = run_embed(manifest, tmp_path / "e.parquet", encoder=enc, batch_size=2, workers=0,
                       keep_cols=["label"])
    table = pq.read_table(tmp_path / "e.parquet")
    # every item keeps its row: the title embedded even where the image failed
    assert table.column("product_id").to_pylist() == [f"p{i:03d}" for i in range(6)]
    assert table.column("label").to_pylist() == ["shirt", "shoe"] * 3
    images = table.column(VIEWS[0]).to_pylist()
    assert [i for i, v in enumerate(images) if v is None] == [1, 3, 4, 5]
    titles = pacsv.read_csv(manifest).column("title").to_pylist()
    np.testing.assert_allclose(matrix(table, VIEWS[1]), enc.encode_texts(titles).numpy(), atol=1e-5)
    assert result.n_failed == 4 and result.n_written == 6
    errors = pacsv.read_csv(errors_path(tmp_path / "e.parquet")).to_pylist()
    by_id = {e["id"]: e for e in errors}
    assert sorted(by_id) == ["p001", "p003", "p004", "p005"]
    assert by_id["p003"]["reason"] == "file not found" and by_id["p003"]["source"] == "img/003.jpg"
    assert by_id["p001"]["reason"].startswith("cannot decode image")
    assert by_id["p004"]["reason"].startswith("corrupt image")
    assert by_id["p005"]["reason"] == "no image"
    assert {e["column"] for e in errors} == {"image"}


def test_readers_refuse_null_vectors_in_one_line(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 3)
    (tmp_path / "img/001.jpg").unlink()
    run_embed(manifest, tmp_path / "e.parquet", encoder=enc, workers=0)
    with pytest.raises(InputError, match=r"e\.parquet: clip_image_features: 1 missing embedding\(s\), first at row 1$"):
        read_embeddings(tmp_path / "e.parquet", VIEWS)
    assert read_embeddings(tmp_path / "e.parquet", VIEWS[1:]).n_items == 3


def test_urls_fetched_and_failures_reported(tmp_path, enc):
    bodies = {f"/{i}.jpg": jpeg_bytes(i) for i in range(3)}
    bodies["/flaky.jpg"] = jpeg_bytes(9)
    bodies["/huge.jpg"] = jpeg_bytes(5, (400, 300), quality=100)
    assert len(bodies["/huge.jpg"]) > 20_000 > len(bodies["/0.jpg"])
    with image_server(bodies) as (base, hits):
        names = ["0", "1", "2", "flaky", "missing", "slow", "huge", "big-nolength"]
        pacsv.write_csv(pa.table({"product_id": names, "image": [f"{base}/{n}.jpg" for n in names]}),
                        tmp_path / "m.csv")
        limits = FetchLimits(timeout=0.3, retries=1, backoff=0.01, max_bytes=20_000)
        result = run_embed(tmp_path / "m.csv", tmp_path / "e.parquet", encoder=enc, workers=0, limits=limits)
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column("product_id").to_pylist() == ["0", "1", "2", "flaky"]
    direct = enc.encode_images([decode_image(bodies["/1.jpg"], FetchLimits())])[0].numpy()
    np.testing.assert_allclose(matrix(table, VIEWS[0])[1], direct, atol=1e-5)
    reasons = {e["id"]: e["reason"] for e in pacsv.read_csv(errors_path(tmp_path / "e.parquet")).to_pylist()}
    assert reasons["missing"] == "HTTP 404"
    assert reasons["slow"] == "timed out after 0.3 s (after 2 attempts)"
    assert reasons["huge"].startswith("too large: ")
    assert reasons["big-nolength"] == f"too large: over max_bytes {limits.max_bytes}"
    assert hits["/missing.jpg"] == 1 and hits["/flaky.jpg"] == 2 and hits["/slow.jpg"] == 2
    assert result.n_failed == 4


def test_resume_after_interruption_embeds_only_the_rest(tmp_path, enc, monkeypatch):
    manifest = write_catalogue(tmp_path, 23)
    out = tmp_path / "e.parquet"
    with pytest.raises(Interrupt):  # after three batches
        run_embed(manifest, out, encoder=enc, batch_size=4, chunk_rows=4, workers=0, progress=interrupt_at(4))
    assert not out.exists()
    assert len(list(parts_dir(out).glob("chunk-*.parquet"))) == 3

    seen = count_images(monkeypatch, enc)
    result = run_embed(manifest, out, encoder=enc, batch_size=4, chunk_rows=4, workers=0)
    assert sum(seen) == 23 - 12 == result.n_embedded
    table = pq.read_table(out)
    assert table.num_rows == 23 and table.column("product_id").to_pylist() == [f"p{i:03d}" for i in range(23)]
    monkeypatch.undo()
    run_embed(manifest, tmp_path / "fresh.parquet", encoder=enc, batch_size=5, workers=0)
    fresh = pq.read_table(tmp_path / "fresh.parquet")
    for col in VIEWS:
        np.testing.assert_allclose(matrix(table, col), matrix(fresh, col), atol=1e-5)
    assert not parts_dir(out).exists()


@pytest.mark.parametrize("retry_errors", [False, True])
def test_failed_items_are_kept_unless_retried(tmp_path, enc, retry_errors):
    manifest = write_catalogue(tmp_path, 4)
    out = tmp_path / "e.parquet"
    (tmp_path / "img/002.jpg").rename(tmp_path / "away.jpg")
    with pytest.raises(Interrupt):
        run_embed(manifest, out, encoder=enc, batch_size=2, chunk_rows=2, workers=0, progress=interrupt_at(3))
    (tmp_path / "away.jpg").rename(tmp_path / "img/002.jpg")
    result = run_embed(manifest, out, encoder=enc, batch_size=2, chunk_rows=2, workers=0,
                       retry_errors=retry_errors)
    if retry_errors:
        assert (result.n_embedded, result.n_written, result.n_failed) == (1, 4, 0)
        assert not errors_path(out).exists()
    else:
        assert (result.n_embedded, result.n_written, result.n_failed) == (0, 4, 1)
        assert pacsv.read_csv(errors_path(out)).column("id").to_pylist() == ["p002"]


def test_chunks_of_other_settings_are_refused(tmp_path, enc):
    manifest = write_catalogue(tmp_path, 4)
    out = tmp_path / "e.parquet"
    with pytest.raises(Interrupt):
        run_embed(manifest, out, encoder=enc, batch_size=2, chunk_rows=2, workers=0, progress=interrupt_at(2))
    with pytest.raises(InputError, match=r'e\.parquet\.parts: holds chunks of a run with other settings \(columns '
                                         r'\{"image": "clip_image_features", "title": "clip_text_features"\}, now '
                                         r'\{"image": "clip_image_features"\}\); rerun with the same settings'):
        run_embed(manifest, out, encoder=enc, text_cols=None, workers=0)


def test_text_only_rows_and_missing_text(tmp_path, enc):
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"sku": [3, 1, 2], "name": ["a red shoe", None, "a hat"]}), manifest)
    result = run_embed(manifest, tmp_path / "e.parquet", encoder=enc, id_col="sku", text_cols="name")
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column_names == ["sku", "clip_text_features"]
    assert table.column("sku").to_pylist() == ["3", "2"]
    np.testing.assert_allclose(matrix(table, "clip_text_features"),
                               enc.encode_texts(["a red shoe", "a hat"]).numpy(), atol=1e-5)
    assert result.failure_reasons == {"missing text": 1}


def test_embed_classes_is_the_normalised_template_mean(tmp_path, enc):
    (tmp_path / "classes.txt").write_text("shirt\nshoe\nhat\n")
    (tmp_path / "templates.txt").write_text("a photo of a {}.\n# a comment\na {} for sale\n")
    result = run_embed_classes(tmp_path / "classes.txt", tmp_path / "c.parquet", encoder=enc,
                               templates=tmp_path / "templates.txt")
    classes = read_classes(tmp_path / "c.parquet")
    assert classes.names == ["shirt", "shoe", "hat"] and result.templates == ["a photo of a {}.", "a {} for sale"]
    assert classes.prompts[1] == "a photo of a shoe. | a shoe for sale"
    for i, name in enumerate(classes.names):
        a = enc.encode_texts([f"a photo of a {name}."])[0].numpy()
        b = enc.encode_texts([f"a {name} for sale"])[0].numpy()
        mean = (a + b) / np.linalg.norm(a + b)
        np.testing.assert_allclose(classes.embeddings[i], mean, atol=1e-5)
    assert pq.read_schema(tmp_path / "c.parquet").metadata[b"pairclass.dim"] == b"64"


def test_text_backend_uses_offline_minilm(tmp_path):
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    from pairclass.embed.text import default_text_model

    manifest = tmp_path / "m.csv"
    titles = ["Turtle Check Men Navy Blue Shirt", "Puma Men Grey T-shirt", "Titan Women Watch"]
    pacsv.write_csv(pa.table({"product_id": ["a", "b", "c"], "title": titles}), manifest)
    result = run_embed(manifest, tmp_path / "e.parquet", backend="text", device="cpu")
    reference = SentenceTransformer(str(default_text_model()), device="cpu").encode(
        titles, normalize_embeddings=True)
    X = read_embeddings(tmp_path / "e.parquet", ["clip_text_features"]).views["clip_text_features"]
    assert result.dim == 384 and result.model == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(X, reference, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_col="photo"), r"m\.csv: photo: column not found \(columns: product_id, image, title, label\)"),
        (dict(id_col="sku"), r"m\.csv: sku: column not found"),
        (dict(image_col=None, text_cols=None), r"m\.csv: nothing to embed"),
        (dict(backend="text", image_col="image"), r"m\.csv: image: the text backend embeds no images"),
    ],
)
def test_bad_manifest_columns(tmp_path, enc, kwargs, message):
    manifest = write_catalogue(tmp_path, 2).rename(tmp_path / "m.csv")
    encoder = None if kwargs.get("backend") == "text" else enc
    with pytest.raises(InputError, match=message):
        run_embed(manifest, tmp_path / "e.parquet", encoder=encoder, workers=0, **kwargs)


def test_duplicate_ids_refused(tmp_path, enc):
    pacsv.write_csv(pa.table({"product_id": ["a", "b", "a"], "title": ["x", "y", "z"]}), tmp_path / "m.csv")
    with pytest.raises(InputError, match=r"m\.csv: product_id: duplicate id 'a'"):
        run_embed(tmp_path / "m.csv", tmp_path / "e.parquet", encoder=enc)


def test_model_config_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: unreadable model config"):
        load_clip(str(tmp_path / "bad.json"), device="cpu")
    (tmp_path / "half.json").write_text('{"embed_dim": 8}')
    with pytest.raises(InputError, match=r"half\.json: not an open_clip model config \(missing vision_cfg, text_cfg\)"):
        load_clip(str(tmp_path / "half.json"), device="cpu")
    with pytest.raises(InputError, match="unknown open_clip model 'ViT-Q-99'"):
        load_clip("ViT-Q-99", device="cpu")
    with pytest.raises(InputError, match=r"nope\.safetensors' is neither a file nor a pretrained tag of tiny-clip "
                                         r"\(it has none\)"):
        load_clip(str(TINY_CONFIG), pretrained=str(tmp_path / "nope.safetensors"), device="cpu")


def test_local_checkpoint_loads(tmp_path, enc):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, tmp_path / "w.safetensors")
    loaded = load_clip(str(TINY_CONFIG), pretrained=str(tmp_path / "w.safetensors"), device="cpu", seed=123)
    assert loaded.pretrained == str(tmp_path / "w.safetensors")
    torch.testing.assert_close(loaded.encode_texts(["a shoe"]), enc.encode_texts(["a shoe"]))
