"""The batched tensor preprocess against open_clip's textbook torchvision transform, on the CPU."""

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from open_clip.transform import PreprocessCfg, image_transform_v2  # noqa: E402
from PIL import Image  # noqa: E402

from embed_support import TINY_CONFIG, jpeg_bytes  # noqa: E402
from pairclass.embed import FetchLimits, TensorPreprocess, load_clip  # noqa: E402
from pairclass.embed.images import decode_image  # noqa: E402

SOURCE_SIZES = [(60, 80), (80, 60), (33, 33), (7, 120), (300, 200)]  # (width, height)

# one grey level is 1 / 255 / std ~ 0.015 after normalisation; allow two
MAX_ABS = 0.035


def textbook(cfg, jpeg):
    return image_transform_v2(cfg, is_train=False)(Image.open(io.BytesIO(jpeg)))


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("size", [(32, 32), (224, 224), (32, 48)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_matches_textbook_transform(resize_mode, size, interpolation):
    cfg = PreprocessCfg(size=size, resize_mode=resize_mode, interpolation=interpolation)
    pre = TensorPreprocess.from_cfg(cfg)
    jpegs = [jpeg_bytes(i, s) for i, s in enumerate(SOURCE_SIZES)]
    ours = pre([decode_image(j, FetchLimits()) for j in jpegs])
    ref = torch.stack([textbook(cfg, j) for j in jpegs])
    assert ours.shape == ref.shape == (len(jpegs), 3, *size)
    diff = (ours - ref).abs()
    assert diff.max().item() <= MAX_ABS
    assert diff.mean().item() < 0.005


def test_batch_of_equal_sizes_matches_one_by_one():
    pre = TensorPreprocess((32, 32), mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    images = [decode_image(jpeg_bytes(i, (60, 80)), FetchLimits()) for i in range(4)]
    batched = pre(torch.stack(images))
    single = torch.cat([pre([im]) for im in images])
    torch.testing.assert_close(batched, single)


def test_mixed_sizes_keep_their_order():
    pre = TensorPreprocess((16, 16), mean=(0.5,) * 3, std=(0.5,) * 3)
    images = [decode_image(jpeg_bytes(i, s), FetchLimits()) for i, s in enumerate([(40, 30), (30, 40), (40, 30)])]
    mixed = pre(images)
    for i, im in enumerate(images):
        torch.testing.assert_close(mixed[i], pre([im])[0])


def test_embeddings_match_textbook_pipeline():
    torch.set_num_threads(1)
    enc = load_clip(str(TINY_CONFIG), random_weights=True, device="cpu", precision="fp32")
    cfg = PreprocessCfg(**enc.model.visual.preprocess_cfg)
    # the last image is large enough for the reduced-scale JPEG decode (draft) to kick in
    jpegs = [jpeg_bytes(i, s) for i, s in enumerate([*SOURCE_SIZES, (640, 480)])]
    draft = (2 * enc.image_size[1], 2 * enc.image_size[0])
    ours = enc.encode_images([decode_image(j, FetchLimits(), draft_size=draft) for j in jpegs])
    with torch.inference_mode():
        ref = enc.model.encode_image(torch.stack([textbook(cfg, j) for j in jpegs]), normalize=True)
    cos = (ours * ref).sum(1)
    assert cos.min().item() >= 0.999


def test_resized_size_follows_open_clip_rules():
    pre = TensorPreprocess((224, 224), (0,) * 3, (1,) * 3)
    # torchvision Resize(224): short side to 224, long side truncated
    assert pre.resized_size(80, 60) == (int(224 * 80 / 60), 224)
    assert pre.resized_size(60, 80) == (224, int(224 * 80 / 60))
    squash = TensorPreprocess((20, 30), (0,) * 3, (1,) * 3, resize_mode="squash")
    assert squash.resized_size(123, 45) == (20, 30)


def test_decode_rejects_decompression_bomb():
    from pairclass.embed.images import ImageFailure

    with pytest.raises(ImageFailure, match="too many pixels: 200x100 > max_pixels 1000"):
        decode_image(jpeg_bytes(0, (200, 100)), FetchLimits(max_pixels=1000))


def test_decode_gray_and_png():
    buf = io.BytesIO()
    Image.fromarray(np.full((5, 7), 77, np.uint8), mode="L").save(buf, format="PNG")
    x = decode_image(buf.getvalue(), FetchLimits())
    assert x.shape == (3, 5, 7) and x.dtype == torch.uint8 and (x == 77).all()
