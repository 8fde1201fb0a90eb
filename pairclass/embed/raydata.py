"""``embed --engine ray``: the manifest's pending rows as a Ray Data job.

The rows not yet embedded -> ``map_batches`` on CPU tasks that fetch and decode the images to uint8
(:class:`~pairclass.embed.images.ImageDataset`, as the local DataLoader workers do) -> ``map_batches``
on an actor pool that loads the model once per actor (one GPU each when the cluster has GPUs) and
embeds the images and texts (:func:`~pairclass.embed.run.encode_batch`) -> ``write_parquet`` of chunk
files into the output's sidecar folder, which :class:`~pairclass.embed.resume.ChunkStore` reads like
the local engine's chunks. A rerun skips the ids those chunks hold; a chunk cut short by a crash is
set aside and its ids embedded again; failed images go to the errors file, as locally.

Every node must read the images at the same paths (shared storage, or URLs) and write the sidecar
folder beside ``--out``.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import torch
from ray.data.datasource import FilenameProvider

from ..engines.raydata import connect
from ..errors import input_error
from .images import ImageDataset, collate_images
from .resume import chunk_table
from .run import encode_batch, load_encoder

__all__ = ["embed_on_ray"]

ID, SOURCE, TEXT = "_id", "_source", "_text:"
PIXELS, HEIGHT, WIDTH, REASON = "_pixels", "_height", "_width", "_reason"


def embed_on_ray(rows, store, *, image, texts, root, load, target_size, batch_size, workers, limits, address=None):
    """Embed ``rows`` into chunk files of ``store`` with Ray Data; returns the job's seconds.

    Parameters
    ----------
    rows : pyarrow.Table
        ``_id``, ``_source`` (image paths or URLs, with ``image``) and ``_text:VIEW`` per text view.
    store : ChunkStore
    image : str or None
        The image view.
    texts : list of str
        The text views.
    root : Path
        Folder of relative image paths.
    load : dict
        :func:`~pairclass.embed.run.load_encoder`'s arguments, less the device (each actor's).
    target_size : tuple of int or None
        The model's image size, for the reduced-scale JPEG decode.
    batch_size : int
    workers : int or None
        Decoding tasks at once (default: what the cluster's CPUs allow).
    limits : FetchLimits
    address : str, optional
        The cluster (see :func:`pairclass.engines.raydata.connect`).
    """
    ray = connect(address)
    import ray.data

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if load["device"].startswith("cuda") and not gpus:
        raise input_error(f"--device {load['device']}: the Ray cluster has no GPU")
    on_gpu = gpus > 0 and load["device"] != "cpu"
    load = {**load, "device": "cuda" if on_gpu else "cpu"}
    started = time.perf_counter()
    data = ray.data.from_arrow(rows).repartition(-(-rows.num_rows // batch_size))
    if image:
        data = data.map_batches(_decode, fn_kwargs={"limits": limits, "root": root, "target_size": target_size},
                                batch_format="pyarrow", batch_size=batch_size, concurrency=workers)
    data = data.map_batches(_Model, fn_constructor_kwargs={"load": load, "views": store.views, "image": image,
                                                           "texts": texts},
                            batch_format="pyarrow", batch_size=batch_size, concurrency=gpus if on_gpu else 1,
                            num_gpus=1 if on_gpu else 0)
    data.write_parquet(str(store.dir.resolve()), filename_provider=_ChunkNames(store.next_chunk))
    return time.perf_counter() - started


def _decode(batch, *, limits, root, target_size):
    """Fetch and decode a batch's images to uint8 (CPU tasks): pixels, sizes and reasons."""
    loader = ImageDataset(batch.column(SOURCE).to_pylist(), limits, root=root, target_size=target_size)
    try:
        items = loader.__getitems__(list(range(batch.num_rows)))  # concurrent downloads for URLs
    finally:
        loader.close()
    pixels = [None if x is None else x.numpy().tobytes() for _, x, _ in items]
    sizes = [(None, None) if x is None else tuple(x.shape[1:]) for _, x, _ in items]
    return (batch.drop_columns([SOURCE])
            .append_column(PIXELS, pa.array(pixels, pa.large_binary()))
            .append_column(HEIGHT, pa.array([h for h, _ in sizes], pa.int32()))
            .append_column(WIDTH, pa.array([w for _, w in sizes], pa.int32()))
            .append_column(REASON, pa.array([r for _, _, r in items], pa.string())))


class _Model:
    """An actor: the model, loaded once, embeds batches into chunk rows."""

    def __init__(self, load, views, image, texts):
        self.encoder = load_encoder(**load)
        self.views, self.image, self.texts = views, image, texts

    def __call__(self, batch):
        loaded = None
        if self.image:
            pixels, heights, widths, reasons = (batch.column(c).to_pylist() for c in (PIXELS, HEIGHT, WIDTH, REASON))
            loaded = collate_images([
                (r, None if p is None else torch.from_numpy(np.frombuffer(p, np.uint8).reshape(3, h, w).copy()), why)
                for r, (p, h, w, why) in enumerate(zip(pixels, heights, widths, reasons))])
        texts = {view: batch.column(TEXT + view).to_pylist() for view in self.texts}
        done = encode_batch(self.encoder, list(range(batch.num_rows)), self.views, image=self.image, loaded=loaded,
                            texts=texts)
        return chunk_table(batch.column(ID).to_pylist(), done.resolve(), done.errors, self.views)


class _ChunkNames(FilenameProvider):
    """Chunk file names numbered on from the store's last chunk, one per write task, with the write's id."""

    def __init__(self, first):
        super().__init__(file_format="parquet")
        self.first = first

    def get_filename_for_task(self, write_uuid, task_index):
        return f"chunk-{self.first + task_index:06d}-{write_uuid}.parquet"
