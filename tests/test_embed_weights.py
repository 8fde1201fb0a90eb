"""Safe weights: pretrained by default, random only when asked, offline hub tags fail fast, no pickles."""

import json
import socket

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from embed_support import TINY_CONFIG, write_catalogue  # noqa: E402
from pairclass.cli import app  # noqa: E402
from pairclass.embed import load_clip, load_text_model  # noqa: E402
from pairclass.errors import InputError  # noqa: E402

runner = CliRunner()
CONVERT = ("pairclass never unpickles weights; convert them with "
           "safetensors.torch.save_file(state_dict, 'weights.safetensors')")


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Fail the test if a model gets built."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was allocated")

    monkeypatch.setattr(open_clip, "create_model", refuse)


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return tmp_path / "hub-cache"


def closed_port():
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def test_default_is_the_pretrained_tag_and_fails_fast_offline(tmp_path, monkeypatch, nothing_allocated,
                                                             empty_hub_cache):
    manifest = write_catalogue(tmp_path, 2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["embed", str(manifest), "--out", str(tmp_path / "e.parquet"), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: cannot fetch the pretrained weights 'laion2b_s34b_b79k' of ViT-B-32: offline (HF_HUB_OFFLINE is "
        "set) and not in the Hugging Face cache; pass --pretrained FILE.safetensors, --pretrained local-dir:DIR "
        "or --random-weights\n")
    assert not (tmp_path / "e.parquet").exists()


def test_an_unreachable_hub_is_found_by_a_probe(tmp_path, monkeypatch, nothing_allocated, empty_hub_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(InputError, match=rf"^cannot fetch the pretrained weights 'openai' of ViT-B-16: offline "
                                         rf"\({endpoint} did not answer within 3 s\) and not in the Hugging Face "
                                         r"cache; pass --pretrained"):
        load_clip("ViT-B-16", pretrained="openai", device="cpu")


def test_a_cached_tag_loads_offline(tmp_path, monkeypatch, enc, empty_hub_cache):
    """Offline is not broken: weights already in the Hugging Face cache load without the network."""
    from safetensors.torch import save_file

    snapshot = empty_hub_cache / "models--pairclass--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (empty_hub_cache / "models--pairclass--tiny" / "refs").mkdir()
    (empty_hub_cache / "models--pairclass--tiny" / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, snapshot / "open_clip_model.safetensors")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-clip", {"cached": {"hf_hub": "pairclass/tiny/"}})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_clip(str(TINY_CONFIG), pretrained="cached", device="cpu", seed=7)
    assert loaded.pretrained == "cached"
    torch.testing.assert_close(loaded.encode_texts(["a shoe"]), enc.encode_texts(["a shoe"]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "no weights given for 'tiny-clip': pass --pretrained (a .safetensors file or local-dir:DIR), "
                 "or --random-weights"),
        (dict(pretrained="openai", random_weights=True), "openai brings its own weights; drop --random-weights"),
        (dict(pretrained="laion"), "'laion' is neither a file nor a pretrained tag of tiny-clip (it has none)"),
    ],
)
def test_weights_must_be_named(kwargs, message, nothing_allocated):
    with pytest.raises(InputError) as e:
        load_clip(str(TINY_CONFIG), device="cpu", **kwargs)
    assert str(e.value) == message


def test_random_weights_only_when_asked(tmp_path, caplog):
    manifest = write_catalogue(tmp_path, 2)
    with caplog.at_level("WARNING"):
        result = runner.invoke(app, ["embed", str(manifest), "--out", str(tmp_path / "e.parquet"), "--model",
                                     str(TINY_CONFIG), "--random-weights", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["pretrained"] == "" and summary["n_written"] == 2
    # asked for, random weights are no news: open_clip's warning about them stays out of the output
    assert "initialized randomly" not in caplog.text


def test_a_pickle_is_refused_before_a_model_is_built(tmp_path, enc, nothing_allocated):
    torch.save(enc.model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(InputError) as e:
        load_clip(str(TINY_CONFIG), pretrained=str(tmp_path / "w.pt"), device="cpu")
    assert str(e.value) == f"{tmp_path / 'w.pt'}: not a .safetensors file; {CONVERT}"


@pytest.mark.parametrize("files", [["open_clip_pytorch_model.bin"],
                                   ["open_clip_pytorch_model.bin", "model.safetensors"]])
def test_a_pickle_in_a_local_dir_is_refused(tmp_path, enc, nothing_allocated, files):
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    folder.mkdir()
    config = json.loads(TINY_CONFIG.read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    state = {k: v.contiguous() for k, v in enc.model.state_dict().items()}
    for name in files:
        if name.endswith(".safetensors"):
            save_file(state, folder / name)
        else:
            torch.save(state, folder / name)
    # open_clip would load the .bin even beside model.safetensors
    with pytest.raises(InputError) as e:
        load_clip(f"local-dir:{folder}", device="cpu")
    assert str(e.value) == f"{folder / 'open_clip_pytorch_model.bin'}: not a .safetensors file; {CONVERT}"


def test_a_text_model_folder_with_only_a_pickle_is_refused(tmp_path, monkeypatch):
    st = pytest.importorskip("sentence_transformers")

    def refuse(*args, **kwargs):
        raise AssertionError("a model was allocated")

    monkeypatch.setattr(st, "SentenceTransformer", refuse)
    folder = tmp_path / "minilm"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "modules.json").write_text("[]")
    torch.save({"w": torch.zeros(2)}, folder / "pytorch_model.bin")
    with pytest.raises(InputError) as e:
        load_text_model(str(folder), device="cpu")
    assert str(e.value) == (f"{folder}: holds pickled weights (pytorch_model.bin) and no .safetensors beside "
                            f"them; {CONVERT}")
