"""Which weights files may load: safetensors only, checked before a model is allocated.

A ``torch.save`` checkpoint (``.bin``, ``.pt``, ``.pth``) is a pickle, and unpickling runs code, so it is
refused with a message saying how to convert it, whether it is passed directly, sits in an open_clip
``local-dir:`` folder, or in a sentence-transformers model folder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import input_error

__all__ = ["local_dir_weights", "safetensors_file", "text_model_folder"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
CONVERT = ("pairclass never unpickles weights; convert them with "
           "safetensors.torch.save_file(state_dict, 'weights.safetensors')")


def safetensors_file(path):
    """``path`` as a string when it names a ``.safetensors`` file (the suffix that makes open_clip load
    it with safetensors).

    Examples
    --------
    >>> safetensors_file("w.safetensors")
    'w.safetensors'
    >>> safetensors_file("w.pt")
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: w.pt: not a .safetensors file; pairclass never unpickles weights; \
convert them with safetensors.torch.save_file(state_dict, 'weights.safetensors')
    """
    if not str(path).endswith(".safetensors"):
        raise input_error(f"not a .safetensors file; {CONVERT}", path=path)
    return str(path)


def local_dir_weights(folder):
    """The weights file open_clip loads from a ``local-dir:`` folder, if it is safetensors."""
    # open_clip's own choice (a private helper; open_clip is pinned), since it may prefer a .bin
    from open_clip.factory import _find_checkpoint_in_dir

    folder = Path(folder)
    if not folder.is_dir():
        raise input_error("local-dir: folder not found", path=folder)
    chosen = _find_checkpoint_in_dir(folder)
    if chosen is None:
        raise input_error("local-dir: folder holds no weights (no .safetensors file)", path=folder)
    return safetensors_file(chosen)


def text_model_folder(folder):
    """Refuse a sentence-transformers folder that would load pickled weights: a pickle with no
    ``.safetensors`` file beside it, in the folder or in a module's subfolder."""
    folder = Path(folder)
    for pickle in sorted(p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES and p.is_file()):
        if not any(pickle.parent.glob("*.safetensors")):
            raise input_error(f"holds pickled weights ({pickle.relative_to(folder)}) and no .safetensors "
                              f"beside them; {CONVERT}", path=folder)
    return folder
