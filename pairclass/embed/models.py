"""open_clip encoders: resolve a model name or config JSON, its weights, the device and the precision.

Weights load through open_clip (safetensors, or ``torch.load(weights_only=True)``). Nothing is
downloaded unless ``pretrained`` names a hub tag, and a tag that cannot be fetched fails with a message
saying what to pass instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import input_error
from .preprocess import TensorPreprocess

__all__ = ["ClipEncoder", "load_clip", "resolve_device", "autocast_dtype"]

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
LOCAL_DIR = "local-dir:"


def resolve_device(device="auto"):
    """``"auto"`` is CUDA when available, else the CPU; anything else must be available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise input_error(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise input_error(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


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


def _create(name, pretrained, device, seed):
    import open_clip

    if pretrained and pretrained.startswith(LOCAL_DIR):
        name, pretrained = pretrained, None
    if not name.startswith((LOCAL_DIR, "hf-hub:")) and open_clip.get_model_config(name) is None:
        raise input_error(
            f"unknown open_clip model {name!r}; pass a model name from open_clip.list_models() "
            "or a path to a model-config JSON"
        )
    if pretrained and not Path(pretrained).is_file() and not open_clip.list_pretrained_tags_by_model(name):
        raise input_error(f"no pretrained tags for {name!r}, and {pretrained!r} is not a file")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(name, pretrained=pretrained or None, device=device)
    except FileNotFoundError as e:
        raise input_error(f"cannot load model: {e}") from None
    except RuntimeError as e:
        message = str(e).splitlines()[0]
        if "Failed to download" in message or "HF Hub" in message:
            raise input_error(
                f"cannot fetch pretrained weights {pretrained or name!r} (offline?): pass a local checkpoint "
                "with --pretrained FILE (.safetensors or .bin) or --pretrained local-dir:DIR"
            ) from None
        raise input_error(f"cannot load model {name!r} with pretrained {pretrained!r}: {message}") from None
    except ValueError as e:
        raise input_error(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    tokenizer = open_clip.get_tokenizer(name)
    return name, model.eval(), tokenizer


@dataclass
class ClipEncoder:
    """An open_clip model in eval mode with its tokenizer and batched tensor preprocessing.

    Use :func:`load_clip` to build one.

    Attributes
    ----------
    name : str
    pretrained : str
        The weights' tag or path; empty for random weights.
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


def load_clip(model="ViT-B-32", pretrained=None, *, device="auto", precision="auto", seed=0):
    """Build an open_clip encoder.

    Parameters
    ----------
    model : str, default="ViT-B-32"
        An open_clip model name, ``local-dir:DIR``, or a path to a model-config JSON (registered under
        its file stem).
    pretrained : str, optional
        An open_clip tag (downloaded on a normal machine), a checkpoint file, or ``local-dir:DIR``.
        None gives random weights.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
        ``auto`` is fp16 autocast on CUDA and fp32 on the CPU.
    seed : int, default=0
        Seeds the random initialisation, so a model without ``pretrained`` weights is the same each time.

    Returns
    -------
    ClipEncoder

    Raises
    ------
    InputError
        For an unknown model, an unreadable config, missing weights or an unreachable tag.
    """
    dev = resolve_device(device)
    amp = autocast_dtype(precision, dev)
    name, net, tokenizer = _create(_config_name(str(model)), pretrained, dev, seed)
    preprocess = TensorPreprocess.from_cfg(net.visual.preprocess_cfg)
    log.info("loaded %s (pretrained=%s) on %s", name, pretrained, dev)
    return ClipEncoder(name, str(pretrained or ""), net, tokenizer, preprocess, dev, amp)
