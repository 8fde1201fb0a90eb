"""One device resolver for embed and dml."""

import pytest

torch = pytest.importorskip("torch")

from pairclass.devices import resolve_device  # noqa: E402
from pairclass.errors import InputError  # noqa: E402


def test_embed_and_dml_share_the_resolver():
    from pairclass.dml import train
    from pairclass.embed import models, text

    assert train.resolve_device is models.resolve_device is text.resolve_device is resolve_device


@pytest.mark.parametrize("device", [None, "auto"])
def test_auto_is_cuda_when_there_is_one(device):
    assert resolve_device(device) == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_named_devices_must_exist(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match=r"^unknown device 'gpu'; use auto, cpu, cuda or cuda:N$"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match=r"^device 'cuda:1' requested but CUDA is not available; use --device cpu$"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match=r"^device 'cuda:1' requested but this machine has 1 CUDA device\(s\)$"):
        resolve_device("cuda:1")
