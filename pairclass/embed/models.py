"""open_clip encoders: resolve a model name or config JSON, its weights, the device and the precision.

Weights are pretrained unless asked otherwise (open_clip's ``require_pretrained``): the default model
gets its standard tag, and random weights need ``random_weights=True``. Weights load through open_clip
from safetensors files only (see :mod:`.weights`); a hub tag is fetched on a normal machine, and
offline it loads from the local cache or fails at once with a message saying what to pass instead.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import input_error
from .hub import cache_only, cached, offline_reason
from .preprocess import TensorPreprocess
from .weights import local_dir_weights, safetensors_file

__all__ = ["DEFAULT_MODEL", "DEFAULT_PRETRAINED", "ClipEncoder", "load_clip", "autocast_dtype"]

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
LOCAL_DIR, HF_HUB = "local-dir:", "hf-hub:"
DEFAULT_MODEL, DEFAULT_PRETRAINED = "ViT-B-32", "laion2b_s34b_b79k"
INSTEAD = "pass --pretrained FILE.safetensors, --pretrained local-dir:DIR or --random-weights"


def autocast_dtype(precision, device):
    """The autocast dtype for a precision on a device, or None for full fp32.

    ``"auto"`` means fp16 on CUDA and fp32 elsewhere. Weights stay fp32; reduced precisions run the
    forward pass under ``torch.autocast`` (automatic mixed precision).

    Examples
    --------
    >>> autocast_dtype("auto", torch.device("cpu")) is None
    True
    >>> autocast_dtype("bf16", torch.device("cpu"))
    torch.bfloat16
    """
    if precision in (None, "auto"):
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise input_error(f"unknown precision {precision!r}; expected one of auto, {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return None if dtype == torch.float32 else dtype


@lru_cache(maxsize=None)
def _register_config(path):
    import open_clip

    open_clip.add_model_config(path)


def _config_name(model):
    """A built-in open_clip name, or the stem of a config JSON registered with open_clip."""
    path = Path(model)
    if path.suffix.lower() != ".json":
        return model
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise input_error("model config not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise input_error(f"unreadable model config: {e}", path=path) from None
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise input_error(f"not an open_clip model config (missing {', '.join(missing)})", path=path)
    _register_config(str(path.resolve()))
    return path.stem


def _weights(name, pretrained, random_weights):
    """What open_clip loads for ``name``: a tag, a ``.safetensors`` path, or None (random weights, or a
    ``local-dir:``/``hf-hub:`` model's own). Checked before anything is allocated."""
    import open_clip

    if not name.startswith((LOCAL_DIR, HF_HUB)) and open_clip.get_model_config(name) is None:
        raise input_error(
            f"unknown open_clip model {name!r}; pass a model name from open_clip.list_models() "
            "or a path to a model-config JSON"
        )
    if random_weights and (pretrained or name.startswith((LOCAL_DIR, HF_HUB))):
        raise input_error(f"{pretrained or name} brings its own weights; drop --random-weights")
    if name.startswith(LOCAL_DIR):
        local_dir_weights(name[len(LOCAL_DIR):])
    if random_weights or name.startswith((LOCAL_DIR, HF_HUB)):
        return None
    tags = open_clip.list_pretrained_tags_by_model(name)
    pretrained = pretrained or (DEFAULT_PRETRAINED if name == DEFAULT_MODEL else None)
    if pretrained is None:
        example = f"a tag such as {tags[0]}, " if tags else ""
        raise input_error(f"no weights given for {name!r}: pass --pretrained ({example}a .safetensors file or "
                          "local-dir:DIR), or --random-weights")
    if Path(pretrained).is_file():
        return safetensors_file(pretrained)
    if not open_clip.is_pretrained_cfg(name, pretrained):
        raise input_error(f"{pretrained!r} is neither a file nor a pretrained tag of {name} "
                          f"({', '.join(tags) if tags else 'it has none'})")
    return pretrained


def _hub_files(name, pretrained):
    """The hub repository and the files (any one will do) that ``name`` with ``pretrained`` needs, or None."""
    import open_clip
    from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if name.startswith(HF_HUB):
        return name[len(HF_HUB):], [HF_CONFIG_NAME]
    if not pretrained or Path(pretrained).is_file():
        return None
    repo, filename = os.path.split(open_clip.get_pretrained_cfg(name, pretrained)["hf_hub"])
    filename = filename or HF_WEIGHTS_NAME
    # open_clip tries the safetensors twin first
    twin = HF_SAFE_WEIGHTS_NAME if filename == HF_WEIGHTS_NAME else filename.rsplit(".", 1)[0] + ".safetensors"
    return repo, [twin, filename]


def _hub_access(name, pretrained):
    """A context for loading ``name``: as it is online; offline, the Hugging Face cache only, and an
    error at once when the files are not there."""
    hub = _hub_files(name, pretrained)
    reason = offline_reason() if hub else None
    if reason is None:
        return nullcontext()
    if not cached(*hub):
        what = f"pretrained weights {pretrained!r} of {name}" if pretrained else name
        raise input_error(f"cannot fetch the {what}: offline ({reason}) and not in the Hugging Face cache; {INSTEAD}")
    return cache_only()


class _RandomInitNotice(logging.Filter):
    def filter(self, record):
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextmanager
def _quiet_random_init():
    """Drop open_clip's warning that a model is initialised randomly, for random weights asked for."""
    notice = _RandomInitNotice()
    logging.getLogger().addFilter(notice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(notice)


def _create(name, pretrained, random_weights, device, seed):
    import open_clip

    if pretrained and pretrained.startswith(LOCAL_DIR):
        name, pretrained = pretrained, None
    pretrained = _weights(name, pretrained, random_weights)
    access = _hub_access(name, pretrained)
    try:
        with access, _quiet_random_init() if random_weights else nullcontext():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = open_clip.create_model(name, pretrained=pretrained, device=device,
                                               require_pretrained=not random_weights)
            tokenizer = open_clip.get_tokenizer(name)
    except FileNotFoundError as e:
        raise input_error(f"cannot load model: {e}") from None
    except RuntimeError as e:
        message = str(e).splitlines()[0]
        if "Failed to download" in message or "HF Hub" in message:
            raise input_error(f"cannot fetch pretrained weights {pretrained or name!r}: {message}; {INSTEAD}") from None
        raise input_error(f"cannot load model {name!r} with pretrained {pretrained!r}: {message}") from None
    except ValueError as e:
        raise input_error(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    return name, model.eval(), tokenizer, pretrained or (name if name.startswith((LOCAL_DIR, HF_HUB)) else None)


@dataclass
class ClipEncoder:
    """An open_clip model in eval mode with its tokenizer and batched tensor preprocessing.

    Use :func:`load_clip` to build one.

    Attributes
    ----------
    name : str
    pretrained : str
        The weights' tag or path (a ``local-dir:`` or ``hf-hub:`` model's name); empty for random weights.
    model : open_clip.CLIP
    tokenizer : callable
    preprocess : TensorPreprocess
    device : torch.device
    amp_dtype : torch.dtype or None
        Autocast dtype of the forward pass; None for fp32.
    dim : int
    """

    name: str
    pretrained: str
    model: torch.nn.Module
    tokenizer: object
    preprocess: TensorPreprocess
    device: torch.device
    amp_dtype: torch.dtype | None = None
    dim: int = field(init=False)

    def __post_init__(self):
        self.dim = int(self.encode_texts(["a"]).shape[1])

    @property
    def image_size(self):
        return self.preprocess.size

    @property
    def precision(self):
        """The precision the forward pass runs in: fp32, fp16 or bf16."""
        return next(k for k, v in PRECISIONS.items() if v == (self.amp_dtype or torch.float32))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def encode_images(self, groups):
        """L2-normalised float32 embeddings of uint8 image batches.

        Parameters
        ----------
        groups : uint8 Tensor of shape (N, 3, H, W), or a list of such tensors (sizes may differ)

        Returns
        -------
        Tensor of shape (N, dim), float32, on the model's device
            Rows in the order given. Call ``.cpu()`` when needed, so the device can run ahead.
        """
        with torch.inference_mode(), self._autocast():
            x = self.preprocess(groups, device=self.device, dtype=self.amp_dtype or torch.float32)
            return _normalise(self.model.encode_image(x))

    def encode_texts(self, texts):
        """L2-normalised float32 embeddings of strings, as a (N, dim) tensor on the model's device."""
        with torch.inference_mode(), self._autocast():
            tokens = self.tokenizer([str(t) for t in texts]).to(self.device, non_blocking=True)
            return _normalise(self.model.encode_text(tokens))

    def embed_texts(self, texts, *, batch_size=256):
        """Embed a list of strings in batches; returns a float32 numpy array of shape (N, dim)."""
        out = [self.encode_texts(texts[i:i + batch_size]).cpu() for i in range(0, len(texts), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)


def _normalise(x):
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def load_clip(model=DEFAULT_MODEL, pretrained=None, *, random_weights=False, device="auto", precision="auto",
              seed=0):
    """Build an open_clip encoder.

    Parameters
    ----------
    model : str, default="ViT-B-32"
        An open_clip model name, ``local-dir:DIR``, ``hf-hub:REPO``, or a path to a model-config JSON
        (registered under its file stem).
    pretrained : str, optional
        An open_clip tag (fetched on a normal machine, or from the local Hugging Face cache offline), a
        ``.safetensors`` file, or ``local-dir:DIR``. Default: ``laion2b_s34b_b79k`` for ViT-B-32; other
        models must name their weights.
    random_weights : bool, default=False
        Seeded random weights instead (tests, throughput benchmarks); excludes ``pretrained``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
        ``auto`` is fp16 autocast on CUDA and fp32 on the CPU.
    seed : int, default=0
        Seeds the random initialisation, so random weights are the same each time.

    Returns
    -------
    ClipEncoder

    Raises
    ------
    InputError
        For an unknown model, an unreadable config, missing or pickled weights, or a tag that cannot be
        fetched; all before the model is allocated.
    """
    dev = resolve_device(device)
    amp = autocast_dtype(precision, dev)
    name, net, tokenizer, weights = _create(_config_name(str(model)), pretrained, random_weights, dev, seed)
    preprocess = TensorPreprocess.from_cfg(net.visual.preprocess_cfg)
    log.info("loaded %s (pretrained=%s) on %s", name, weights, dev)
    return ClipEncoder(name, str(weights or ""), net, tokenizer, preprocess, dev, amp)
