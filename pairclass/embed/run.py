"""Library entry points behind ``pairclass embed`` and ``pairclass embed-classes``."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from .. import __version__
from ..errors import input_error
from ..io import DEFAULT_ID_COL, DEFAULT_VIEWS, read_classes, read_table, require_columns, write_error, write_table
from .images import FetchLimits, ImageDataset, collate_images
from ..io.lock import exclusive
from .models import DEFAULT_MODEL, load_clip
from .resume import SETTINGS_KEY, ChunkStore, embedding_column, errors_path
from .templates import fill_templates, load_templates
from .text import load_text_model

__all__ = [
    "ClassEmbedResult", "EmbedResult", "embed_class_prompts", "embed_classes_like", "load_encoder", "run_embed",
    "run_embed_classes",
]

BACKENDS = ("clip", "text")
DEFAULT_IMAGE_COL, DEFAULT_TEXT_COL = "image", "title"
IMAGE_OUT, TEXT_OUT = DEFAULT_VIEWS
AUTO = "auto"


@dataclass
class EmbedResult:
    """What ``run_embed`` did.

    Attributes
    ----------
    out : Path
    errors_path : Path or None
        The errors file (id, column, source, reason), when some items failed.
    n_items : int
        Manifest rows.
    n_written : int
        Rows in the output: the items with at least one view embedded (a view that failed is null).
    n_embedded : int
        Items processed by this run (embedded or failed); the rest came from earlier runs.
    n_failed : int
        Items with a view that failed; each failed view is a row of the errors file.
    columns : dict
        Manifest column -> output column.
    model, pretrained, backend, device : str
    dim : int
    seconds : float
        Wall time of the embedding loop.
    """

    out: Path
    errors_path: Path | None
    n_items: int
    n_written: int
    n_embedded: int
    n_failed: int
    columns: dict
    model: str
    pretrained: str
    backend: str
    device: str
    dim: int
    seconds: float
    failure_reasons: dict = field(default_factory=dict)

    @property
    def items_per_s(self):
        return self.n_embedded / self.seconds if self.seconds > 0 else 0.0

    def to_json(self):
        """A JSON-ready summary."""
        return {
            "out": str(self.out), "errors_path": None if self.errors_path is None else str(self.errors_path),
            "n_items": self.n_items, "n_written": self.n_written, "n_embedded": self.n_embedded,
            "n_resumed": self.n_items - self.n_embedded, "n_failed": self.n_failed,
            "failure_reasons": self.failure_reasons, "columns": self.columns, "model": self.model,
            "pretrained": self.pretrained, "backend": self.backend, "device": self.device, "dim": self.dim,
            "seconds": round(self.seconds, 3), "items_per_s": round(self.items_per_s, 1),
        }


@dataclass
class ClassEmbedResult:
    """What ``run_embed_classes`` wrote: one row per class with its ensembled prompt embedding."""

    out: Path
    names: list
    templates: list
    model: str
    pretrained: str
    backend: str
    dim: int

    def to_json(self):
        """A JSON-ready summary."""
        return {"out": str(self.out), "n_classes": len(self.names), "templates": self.templates,
                "model": self.model, "pretrained": self.pretrained, "backend": self.backend, "dim": self.dim}


def load_encoder(backend="clip", model=None, pretrained=None, *, random_weights=False, device="auto",
                 precision="auto"):
    """The encoder for a backend: open_clip (``"clip"``) or sentence-transformers (``"text"``).

    See :func:`pairclass.embed.load_clip` for ``pretrained`` and ``random_weights`` (clip only) and
    :func:`pairclass.embed.load_text_model` for the text models.
    """
    if backend not in BACKENDS:
        raise input_error(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "text":
        if pretrained or random_weights:
            raise input_error("--pretrained and --random-weights apply to the clip backend; pass the text model "
                              "with --model")
        return load_text_model(model, device=device)
    return load_clip(model or DEFAULT_MODEL, pretrained, random_weights=random_weights, device=device,
                     precision=precision)


def _model_arg(model):
    """The ``model`` argument that reloads an encoder: "" for the default, a config file or model
    folder as an absolute path."""
    model_arg = "" if model is None else str(model)
    return str(Path(model_arg).resolve()) if model_arg and Path(model_arg).exists() else model_arg


def _metadata(encoder, backend, model_arg, extra=None):
    """Schema metadata. ``pairclass.model_arg`` (what reloads the encoder, so classify can embed
    class names alike) is left out when the caller passed a ready encoder (``model_arg`` None)."""
    meta = {
        "pairclass.model": encoder.name, "pairclass.pretrained": encoder.pretrained,
        "pairclass.dim": str(encoder.dim), "pairclass.backend": backend, "pairclass.version": __version__,
    }
    if model_arg is not None:
        meta["pairclass.model_arg"] = model_arg
    return {**meta, **(extra or {})}


def _resolve_columns(table, path, image_col, text_cols, backend):
    """Manifest column -> output column, for the image column (or None) and the text columns."""
    names = table.column_names
    if image_col == AUTO:
        image_col = DEFAULT_IMAGE_COL if backend == "clip" and DEFAULT_IMAGE_COL in names else None
    if text_cols == AUTO:
        text_cols = [DEFAULT_TEXT_COL] if DEFAULT_TEXT_COL in names else []
    if isinstance(text_cols, str):
        text_cols = [text_cols]
    text_cols = text_cols or []
    if image_col and backend == "text":
        raise input_error("the text backend embeds no images; drop --image-col or use --backend clip",
                          path=path, column=image_col)
    if isinstance(text_cols, dict):
        texts = dict(text_cols)
    elif len(text_cols) == 1:
        texts = {text_cols[0]: TEXT_OUT}
    else:
        texts = {c: c for c in text_cols}
    if not image_col and not texts:
        raise input_error(
            f"nothing to embed: no {DEFAULT_IMAGE_COL!r} or {DEFAULT_TEXT_COL!r} column; "
            "pass --image-col and/or --text-col", path=path,
        )
    require_columns(table, [image_col, *texts] if image_col else list(texts), path)
    image = {image_col: IMAGE_OUT} if image_col else {}
    outs = [*image.values(), *texts.values()]
    if len(set(outs)) != len(outs):
        raise input_error(f"two inputs write the same output column ({', '.join(outs)})", path=path)
    return image, texts


def _settings(encoder, backend, id_col, columns, keep_cols):
    """What makes two runs' rows compatible: everything that changes a vector, and the columns."""
    size = encoder.image_size
    return {"backend": backend, "model": encoder.name, "pretrained": encoder.pretrained,
            "precision": encoder.precision, "image_size": None if size is None else list(size),
            "dim": encoder.dim, "id_col": id_col, "columns": columns, "keep_cols": list(keep_cols)}


def _check_out(out, manifest):
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise input_error("output must be a .parquet file", path=out)
    try:
        is_dir, is_manifest = out.is_dir(), out.exists() and manifest.exists() and out.samefile(manifest)
    except OSError as e:  # a name too long
        raise write_error(out, e) from e
    if is_dir:
        raise input_error("is a directory; pass a file path as the output", path=out)
    if is_manifest:
        raise input_error("is the manifest; pass another output path", path=out)


def _manifest(path, id_col):
    table = read_table(path)
    require_columns(table, [id_col], path)
    if not table.num_rows:
        raise input_error("no rows", path=path)
    ids = table.column(id_col)
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type) or pa.types.is_integer(ids.type)):
        raise input_error(f"ids must be strings or integers, got {ids.type}", path=path, column=id_col)
    if ids.null_count:
        raise input_error(f"{ids.null_count} missing id(s)", path=path, column=id_col)
    ids = ids.cast(pa.string()).to_pylist()
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise input_error(f"duplicate id {dup!r}", path=path, column=id_col)
    return table, ids


def _strings(table, column):
    return [None if v is None else str(v) for v in table.column(column).to_pylist()]


def _numpy(x):
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)


class _Batch:
    """One batch in flight: positions, device tensors still computing, and its errors."""

    def __init__(self, positions, dim, columns):
        self.positions = positions
        self.parts = {c: [] for c in columns}
        self.errors = {c: {} for c in columns}
        self.dim = dim

    def resolve(self):
        """Per column, a (len(positions), dim) float32 array; failed rows are zeros (``errors`` says which)."""
        out = {}
        for c, parts in self.parts.items():
            X = np.zeros((len(self.positions), self.dim), np.float32)
            for rows, value in parts:
                X[rows] = _numpy(value)
            out[c] = X
        return out


def encode_batch(encoder, positions, views, *, image=None, loaded=None, texts=None):
    """One batch through the encoder (the device may still be computing when this returns).

    Parameters
    ----------
    positions : list of int
        The batch's manifest positions.
    views : list of str
        Every output view.
    image : str, optional
        The image view, with ``loaded = (row groups, uint8 image groups, failures)`` as
        :func:`~pairclass.embed.images.collate_images` gives them, rows local to the batch.
    texts : dict of str to list, optional
        Text view -> the batch's strings (None: missing).

    Returns
    -------
    _Batch
    """
    batch = _Batch(positions, encoder.dim, views)
    if image:
        groups_pos, groups, failures = loaded
        batch.errors[image].update(failures)
        if groups:
            rows = [r for g in groups_pos for r in g]
            batch.parts[image].append((rows, encoder.encode_images(groups)))
    for out_col, values in (texts or {}).items():
        batch.errors[out_col].update({r: "missing text" for r, v in enumerate(values) if v is None})
        rows = [r for r, v in enumerate(values) if v is not None]
        if rows:
            batch.parts[out_col].append((rows, encoder.encode_texts([values[r] for r in rows])))
    return batch


class _Chunker:
    """Collects resolved batches and writes a chunk every ``chunk_rows`` items."""

    def __init__(self, store, ids, chunk_rows):
        self.store, self.ids, self.chunk_rows = store, ids, chunk_rows
        self._reset()

    def _reset(self):
        self.positions, self.embeddings, self.errors = [], [], {c: {} for c in self.store.views}

    def add(self, batch):
        resolved = batch.resolve()
        offset = len(self.positions)
        self.positions += batch.positions
        self.embeddings.append(resolved)
        for c, errors in batch.errors.items():
            self.errors[c].update({offset + r: e for r, e in errors.items()})
        if len(self.positions) >= self.chunk_rows:
            self.flush()

    def flush(self):
        if not self.positions:
            return
        self.store.write(
            [self.ids[p] for p in self.positions],
            {c: np.concatenate([e[c] for e in self.embeddings]) for c in self.store.views},
            self.errors,
        )
        self._reset()


def _batches(pending, batch_size, *, image, sources, root, encoder, workers, limits):
    """Yield (manifest positions, None or (row groups, image groups, failures)) per batch, in order.

    Images decode in DataLoader workers; rows are positions within the batch.
    """
    if not image:
        for start in range(0, len(pending), batch_size):
            yield pending[start:start + batch_size], None
        return
    dataset = ImageDataset([sources[p] or "" for p in pending], limits, root=root,
                           target_size=encoder.preprocess.size)
    if workers:
        torch.multiprocessing.set_sharing_strategy("file_system")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_images,
        pin_memory=encoder.device.type == "cuda", prefetch_factor=4 if workers else None,
    )
    try:
        for start, (positions, groups, failures) in zip(range(0, len(pending), batch_size), loader):
            local = [[p - start for p in group] for group in positions]
            yield pending[start:start + batch_size], (local, groups, [(p - start, r) for p, r in failures])
    finally:
        dataset.close()


def run_embed(
    manifest,
    out,
    *,
    id_col=DEFAULT_ID_COL,
    image_col=AUTO,
    text_cols=AUTO,
    keep_cols=(),
    backend="clip",
    model=None,
    pretrained=None,
    random_weights=False,
    device="auto",
    precision="auto",
    batch_size=256,
    workers=None,
    chunk_rows=4096,
    image_root=None,
    limits=None,
    retry_errors=False,
    encoder=None,
    progress=None,
    engine="local",
    ray_address=None,
):
    """Embed a catalogue's images and texts into an embedding parquet (SQID layout), resumably.

    Parameters
    ----------
    manifest : path-like
        CSV or parquet with one row per item.
    out : path-like
        Output parquet: the id, the ``keep_cols`` and one L2-normalised list<float32> column per view
        (``clip_image_features``, ``clip_text_features``); a view that failed for an item is null. The
        schema metadata records the model, weights, dimension, pairclass version, the views
        (``pairclass.views``, a JSON list) and the settings a rerun must match (``pairclass.settings``).
        An exclusive lock (``.NAME.lock`` beside it) is held for the run.
    id_col : str, default="product_id"
        String or integer ids, unique and non-null.
    image_col : str or None, default="auto"
        Column of local paths (relative to ``image_root``) or http(s) URLs. ``"auto"`` uses ``image``
        when the manifest has it.
    text_cols : str, sequence of str, dict or None, default="auto"
        Text columns. One column writes ``clip_text_features``; several keep their names; a dict maps
        column to output name. ``"auto"`` uses ``title`` when the manifest has it.
    keep_cols : sequence of str
        Manifest columns copied to the output (labels, for example).
    backend : {"clip", "text"}, default="clip"
        open_clip, or sentence-transformers for text-only catalogues.
    model, pretrained, random_weights
        See :func:`load_encoder`. Defaults: ViT-B-32 with its ``laion2b_s34b_b79k`` weights; the offline
        MiniLM for ``text``.
    device : str, default="auto"
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
    batch_size : int, default=256
    workers : int, optional
        DataLoader workers that fetch and decode images (0: in this process); default: the CPU count,
        at most 16.
    chunk_rows : int, default=4096
        Items per chunk file. An interrupted run loses at most the chunk in progress.
    image_root : path-like, optional
        Folder for relative image paths; default: the manifest's folder.
    limits : FetchLimits, optional
        Timeout, byte cap, pixel cap, retries and download concurrency.
    retry_errors : bool, default=False
        On a rerun, try again the items that failed before.
    encoder : ClipEncoder or SentenceEncoder, optional
        An already loaded encoder; then ``backend``, ``model``, ``pretrained``, ``random_weights``,
        ``device`` and ``precision`` are ignored.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch (``done`` counts earlier runs' items);
        with ``engine="ray"``, before and after the job.
    engine : {"local", "ray"}, default="local"
        ``"ray"``: decode on Ray Data CPU tasks, embed in an actor pool (one actor per GPU of the
        cluster, else one on CPU), chunks by ``write_parquet`` (see :mod:`pairclass.embed.raydata`).
        Each actor loads the model itself, so ``encoder`` must be None.
    ray_address : str, optional
        With ``engine="ray"``: the cluster to join; default: a local one.

    Returns
    -------
    EmbedResult

    Notes
    -----
    A rerun resumes: it embeds only the ids that neither the chunks of an interrupted run nor a
    finished ``out`` hold, so new ids added to the manifest are embedded and added. Chunks or an
    output made with other settings (model, weights, precision, image size, backend, columns) are
    refused, as is an existing output that holds ids the manifest lacks.

    Raises
    ------
    InputError
        For a missing or unreadable manifest, a missing column, bad or duplicate ids, a bad setting,
        model or weights, an output that another run is writing or that cannot be written, or earlier
        chunks or output made with other settings.
    """
    manifest, out = Path(manifest), Path(out)
    _check_out(out, manifest)
    table, ids = _manifest(manifest, id_col)
    if encoder is not None:
        backend = "text" if not hasattr(encoder, "encode_images") else "clip"
    image, texts = _resolve_columns(table, manifest, image_col, text_cols, backend)
    require_columns(table, list(keep_cols), manifest)
    for name, value, lowest in (("batch_size", batch_size, 1), ("chunk_rows", chunk_rows, 1),
                                ("workers", workers, 0)):
        if value is not None and value < lowest:
            raise input_error(f"{name} must be at least {lowest}, got {value}")
    _check_engine(engine, ray_address, encoder)
    ray_workers = workers
    workers = min(16, os.cpu_count() or 1) if workers is None else workers
    limits = limits or FetchLimits()
    columns = {**image, **texts}
    with exclusive(out):
        model_arg = None
        if encoder is None:
            model_arg = _model_arg(model)
            encoder = load_encoder(backend, model, pretrained, random_weights=random_weights, device=device,
                                   precision=precision)
        settings = _settings(encoder, backend, id_col, columns, keep_cols)
        store = ChunkStore(out, settings, columns)
        done, failed = store.open(ids)
        skip = done | (set() if retry_errors else failed)
        pending = [p for p, i in enumerate(ids) if i not in skip]
        sources = _strings(table, next(iter(image))) if image else None
        root = Path(image_root) if image_root is not None else manifest.parent
        if engine == "ray":
            from .raydata import embed_on_ray

            weights = str(Path(pretrained).resolve()) if pretrained and Path(pretrained).is_file() else pretrained
            load = dict(backend=backend, model=model_arg or None, pretrained=weights, random_weights=random_weights,
                        device=device, precision=encoder.precision)
            if progress is not None:
                progress(len(ids) - len(pending), len(ids))
            seconds = embed_on_ray(_pending_rows(table, ids, pending, image, texts, sources), store,
                                   image=next(iter(image.values()), None), texts=list(texts.values()),
                                   root=root.resolve(),
                                   load=load, target_size=encoder.image_size, batch_size=batch_size,
                                   workers=ray_workers, limits=limits, address=ray_address) if pending else 0.0
            if progress is not None:
                progress(len(ids), len(ids))
        else:
            seconds = _embed_pending(
                pending, ids, table, encoder, store, image=image, texts=texts, sources=sources, root=root,
                batch_size=batch_size, workers=workers, chunk_rows=chunk_rows, limits=limits, progress=progress,
            )
        metadata = _metadata(encoder, backend, model_arg, {
            "pairclass.columns": json.dumps(columns), "pairclass.views": json.dumps(list(columns.values())),
            SETTINGS_KEY: json.dumps(settings),
        })
        n_written, errors = store.assemble(table, id_col=id_col, keep_cols=list(keep_cols), metadata=metadata)
    reasons = {}
    for reason in errors.column("reason").to_pylist():
        key = reason.split(":")[0].split(" (after")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return EmbedResult(
        out=out, errors_path=errors_path(out) if errors.num_rows else None, n_items=len(ids),
        n_written=n_written, n_embedded=len(pending), n_failed=len(set(errors.column("id").to_pylist())),
        columns=columns, model=encoder.name, pretrained=encoder.pretrained, backend=backend,
        device=str(getattr(encoder, "device", "cpu")), dim=encoder.dim, seconds=seconds,
        failure_reasons=reasons,
    )


def _check_engine(engine, ray_address, encoder):
    from ..engines import check_engine

    check_engine(engine, ray_address)
    if engine == "ray" and encoder is not None:
        raise input_error("engine='ray' loads the model on every actor: pass model and pretrained, not an encoder")


def _pending_rows(table, ids, pending, image, texts, sources):
    """The rows a Ray job embeds: ids, image sources, texts by view (see :mod:`.raydata`)."""
    from .raydata import ID, SOURCE, TEXT

    rows = {ID: pa.array([ids[p] for p in pending], pa.string())}
    if image:
        rows[SOURCE] = pa.array([sources[p] or "" for p in pending], pa.string())
    for src, out in texts.items():
        values = _strings(table, src)
        rows[TEXT + out] = pa.array([values[p] for p in pending], pa.string())
    return pa.table(rows)


def _embed_pending(pending, ids, table, encoder, store, *, image, texts, sources, root, batch_size, workers,
                   chunk_rows, limits, progress):
    """Embed the manifest rows at ``pending`` into chunks; returns the seconds the loop took."""
    text_values = {c: _strings(table, c) for c in texts}
    chunker = _Chunker(store, ids, chunk_rows)
    total, finished = len(ids), len(ids) - len(pending)

    def submit(positions, loaded):
        return encode_batch(encoder, positions, store.views, image=next(iter(image.values()), None), loaded=loaded,
                            texts={out: [text_values[src][p] for p in positions] for src, out in texts.items()})

    def finish(batch):
        nonlocal finished
        chunker.add(batch)
        finished += len(batch.positions)
        if progress is not None:
            progress(finished, total)

    started = time.perf_counter()
    in_flight = None
    if progress is not None:
        progress(finished, total)
    try:
        for positions, loaded in _batches(pending, batch_size, image=bool(image), sources=sources, root=root,
                                          encoder=encoder, workers=workers, limits=limits):
            batch = submit(positions, loaded)
            # resolve the previous batch while the device works on this one
            if in_flight is not None:
                finish(in_flight)
            in_flight = batch
        if in_flight is not None:
            finish(in_flight)
    finally:
        chunker.flush()
    return time.perf_counter() - started


def embed_class_prompts(class_set, templates, encoder, *, batch_size=256):
    """Prompt ensembling: per class, the normalised mean of the normalised embeddings of its
    prompt (or name) put into each template.

    Returns
    -------
    T : ndarray of shape (n_classes, dim)
    prompts : list of list of str
        The filled templates per class.
    """
    texts = class_set.prompts or class_set.names
    prompts = [fill_templates(templates, t) for t in texts]
    flat = [p for group in prompts for p in group]
    E = encoder.embed_texts(flat, batch_size=batch_size).reshape(len(texts), len(templates), -1)
    T = E.mean(axis=1)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    return T, prompts


def embed_classes_like(class_set, metadata, *, templates="default", device="auto"):
    """Embed a names-only class set with the model recorded in an embedding file's ``metadata``
    (written by :func:`run_embed`): its weights (random when none are recorded) and precision, with
    prompt ensembling over ``templates``.

    Returns
    -------
    T : ndarray of shape (n_classes, dim)
    description : str
        Which model and how many templates, for the progress line.

    Raises
    ------
    InputError
        When the metadata names no model (the file was not written by ``pairclass embed``).
    """
    backend = metadata.get("pairclass.backend")
    if backend not in BACKENDS or "pairclass.model_arg" not in metadata:
        raise input_error(
            "no 'embedding' column, and the embedding file does not say which model made it; "
            "embed the class prompts first (pairclass embed-classes)",
            path=class_set.path,
        )
    pretrained = (metadata.get("pairclass.pretrained") if backend == "clip" else None) or None
    settings = json.loads(metadata.get(SETTINGS_KEY, "{}"))
    encoder = load_encoder(backend, metadata["pairclass.model_arg"] or None, pretrained,
                           random_weights=backend == "clip" and pretrained is None, device=device,
                           precision=settings.get("precision", "auto"))
    template_list = load_templates(templates)
    T, _ = embed_class_prompts(class_set, template_list, encoder)
    return T, f"{encoder.name} x {len(template_list)} templates"


def run_embed_classes(
    classes,
    out,
    *,
    templates="default",
    backend="clip",
    model=None,
    pretrained=None,
    random_weights=False,
    device="auto",
    precision="auto",
    batch_size=256,
    encoder=None,
):
    """Embed class prompts with prompt ensembling: the normalised mean of each template's embedding.

    Parameters
    ----------
    classes : path-like
        A text file (one class per line), or a CSV/parquet with ``name`` and optional ``prompt``
        (the text put into the templates instead of the name).
    out : path-like
        Parquet with ``name``, ``prompt`` (the filled templates, joined by `` | ``) and ``embedding``
        (list<float32>), which ``pairclass classify --classes`` reads.
    templates : "default", sequence of str or path-like, default="default"
        Prompt templates, each with one ``{}``; a file has one per line.
    backend, model, pretrained, random_weights, device, precision, encoder
        As in :func:`run_embed`. Use the model that embedded the items.
    batch_size : int, default=256

    Returns
    -------
    ClassEmbedResult
    """
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise input_error("output must be a .parquet file", path=out)
    class_set = read_classes(classes)
    template_list = load_templates(templates)
    model_arg = None
    if encoder is None:
        model_arg = _model_arg(model)
        encoder = load_encoder(backend, model, pretrained, random_weights=random_weights, device=device,
                               precision=precision)
    else:
        backend = "text" if not hasattr(encoder, "encode_images") else "clip"
    T, prompts = embed_class_prompts(class_set, template_list, encoder, batch_size=batch_size)
    table = pa.table(
        {"name": class_set.names, "prompt": [" | ".join(p) for p in prompts], "embedding": embedding_column(T)},
        metadata=_metadata(encoder, backend, model_arg, {"pairclass.templates": json.dumps(template_list)}),
    )
    write_table(table, out)
    return ClassEmbedResult(out, list(class_set.names), template_list, encoder.name, encoder.pretrained,
                            backend, encoder.dim)
