"""Class embeddings for a run: read from a class file, or embedded from its names with the model
that embedded the items (recorded in their metadata by ``pairclass embed``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import input_error
from .io import read_classes

__all__ = ["load_class_embeddings"]


def load_class_embeddings(classes_path, dim, *, against, metadata=None, progress=None):
    """Read a class file and check its embeddings' width against ``against`` (a label).

    A class file with names only is embedded here (prompt ensembling over the default templates)
    when ``metadata``, the items' embedding-file metadata, names the model that made them.
    """
    classes = read_classes(classes_path)
    if classes.embeddings is None:
        if not metadata or "pairclass.backend" not in metadata:
            raise input_error(
                "no 'embedding' column; embed the class prompts first "
                "(pairclass embed-classes) or pass a parquet with name and embedding columns",
                path=classes.path,
            )
        try:
            from .embed.run import embed_classes_like
        except ImportError as e:
            raise input_error(
                f"no 'embedding' column, and embedding the class names needs pairclass[embed] ({e.name} "
                "is not installed); or embed them elsewhere with pairclass embed-classes",
                path=classes.path,
            ) from None
        embeddings, how = embed_classes_like(classes, metadata)
        if progress is not None:
            progress(f"classes: embedded {len(classes.names)} names with {how}")
        classes = replace(classes, embeddings=embeddings.astype(np.float32))
    if classes.embeddings.shape[1] != dim:
        raise input_error(
            f"dimension {classes.embeddings.shape[1]} does not match {against} ({dim})",
            path=classes.path,
            column="embedding",
        )
    return classes
