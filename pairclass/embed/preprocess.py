"""Batched tensor preprocessing that reproduces open_clip's inference transform on any device.

open_clip's textbook pipeline resizes, crops and normalises one PIL image at a time on the CPU.
Here the DataLoader workers only decode to uint8 and the resize, crop and normalisation run on whole
batches on the model's device. The sizes follow open_clip (``shortest``, ``longest`` and ``squash``
resize modes), and resizing uses antialiased interpolation on uint8 with PIL's rounding, so the result
matches the textbook transform to about one grey level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from open_clip.transform import PreprocessCfg, center_crop_or_pad
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = ["TensorPreprocess"]


@dataclass(frozen=True)
class TensorPreprocess:
    """open_clip's inference preprocessing for batches of uint8 image tensors.

    Parameters
    ----------
    size : tuple of int
        Output ``(height, width)``.
    mean, std : tuple of float
        Per-channel normalisation, on the 0-1 scale.
    interpolation : {"bicubic", "bilinear"}, default="bicubic"
    resize_mode : {"shortest", "longest", "squash"}, default="shortest"
    fill_color : int, default=0
        Padding value (0-255) for ``longest``.

    Examples
    --------
    >>> pre = TensorPreprocess((4, 4), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> x = pre([torch.full((3, 8, 6), 255, dtype=torch.uint8)])
    >>> tuple(x.shape), x.min().item(), x.max().item()
    ((1, 3, 4, 4), 1.0, 1.0)
    """

    size: tuple
    mean: tuple
    std: tuple
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_cfg(cls, cfg):
        """Build from an open_clip ``PreprocessCfg`` or its dict (``model.visual.preprocess_cfg``)."""
        if isinstance(cfg, dict):
            cfg = PreprocessCfg(**cfg)
        size = cfg.size if isinstance(cfg.size, (tuple, list)) else (cfg.size, cfg.size)
        interpolation = "bilinear" if cfg.interpolation == "bilinear" else "bicubic"
        return cls(tuple(size), tuple(cfg.mean), tuple(cfg.std), interpolation, cfg.resize_mode or "shortest",
                   int(cfg.fill_color))

    def resized_size(self, height, width):
        """The ``(height, width)`` an image is resized to before cropping, as open_clip computes it.

        Examples
        --------
        >>> TensorPreprocess((224, 224), (0,) * 3, (1,) * 3).resized_size(80, 60)
        (298, 224)
        >>> TensorPreprocess((224, 224), (0,) * 3, (1,) * 3, resize_mode="longest").resized_size(80, 60)
        (224, 168)
        """
        th, tw = self.size
        if self.resize_mode == "squash":
            return th, tw
        if self.resize_mode == "shortest" and th == tw:
            # torchvision Resize(int): the short side becomes the size, the long side is truncated
            short, long = min(height, width), max(height, width)
            new_long = int(th * long / short)
            return (th, new_long) if height <= width else (new_long, th)
        # open_clip ResizeKeepRatio
        ratio_h, ratio_w = height / th, width / tw
        ratio = max(ratio_h, ratio_w) if self.resize_mode == "longest" else min(ratio_h, ratio_w)
        return round(height / ratio), round(width / ratio)

    def __call__(self, images, *, device="cpu", dtype=torch.float32):
        """Resize, crop and normalise.

        Parameters
        ----------
        images : uint8 Tensor of shape (N, 3, H, W), or a list of (3, H, W) / (N, 3, H, W) tensors
            Images of different sizes are processed in groups of equal size.
        device : str or torch.device, default="cpu"
        dtype : torch.dtype, default=torch.float32

        Returns
        -------
        Tensor of shape (N, 3, size[0], size[1])
            In the order given.
        """
        if isinstance(images, torch.Tensor):
            return self._same_size(images.to(device, non_blocking=True), dtype)
        parts = [im if im.dim() == 4 else im.unsqueeze(0) for im in images]
        return torch.cat([self._same_size(p.to(device, non_blocking=True), dtype) for p in parts])

    def _same_size(self, batch, dtype):
        h, w = batch.shape[-2:]
        size = list(self.resized_size(h, w))
        # open_clip's ResizeKeepRatio for a non-square "shortest" target is always bicubic
        keep_ratio_default = self.resize_mode == "shortest" and self.size[0] != self.size[1]
        bilinear = self.interpolation == "bilinear" and not keep_ratio_default
        mode = InterpolationMode.BILINEAR if bilinear else InterpolationMode.BICUBIC
        if size != [h, w]:
            batch = F.resize(batch, size, interpolation=mode, antialias=True)
        fill = self.fill_color if self.resize_mode == "longest" else 0
        batch = center_crop_or_pad(batch, list(self.size), fill=fill)
        mean = torch.tensor(self.mean, device=batch.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        std = torch.tensor(self.std, device=batch.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        return ((batch.float() - mean) / std).to(dtype)
