"""The torch device a run uses, resolved in one place for embed and dml; torch is imported only when called."""

from __future__ import annotations

from .errors import input_error

__all__ = ["resolve_device"]


def resolve_device(device="auto"):
    """``"auto"`` (or None) is CUDA when available, else the CPU; any other device must exist here.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (any name ``torch.device`` takes).

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        For an unknown device name, or a CUDA device this machine does not have.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: unknown device 'gpu'; use auto, cpu, cuda or cuda:N
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise input_error(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise input_error(f"device {device!r} requested but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise input_error(f"device {device!r} requested but this machine has {torch.cuda.device_count()} "
                              "CUDA device(s)")
    return dev
