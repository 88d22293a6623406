import io

import numpy as np
import pytest
import torch
from PIL import Image

from fer_hf import FerImageProcessor

from conftest import CKPLUS, SAMPLES


@pytest.fixture(scope="module")
def processor():
    return FerImageProcessor()


@pytest.fixture(scope="module")
def face_rgb():
    """A real face photo, cropped to the face region and reduced to 96x96 RGB."""
    image = Image.open(SAMPLES / "surprised.jpeg").convert("RGB")
    return image.resize((96, 96), Image.BILINEAR)


def pixels(processor, image):
    return processor(image, return_tensors="pt")["pixel_values"]


def test_output_shape_dtype_and_range(processor, face_rgb):
    values = pixels(processor, face_rgb)
    assert values.shape == (1, 1, 48, 48) and values.dtype == torch.float32
    # mean 0.5, std 0.25 normalization maps 0..255 to -2..2
    assert values.min() >= -2.0 and values.max() <= 2.0 and values.std() > 0.1


def test_rgb_and_l_agree(processor, face_rgb):
    assert torch.equal(pixels(processor, face_rgb), pixels(processor, face_rgb.convert("L")))


def test_rgba_is_composited_over_white(processor, face_rgb):
    rgba = face_rgb.convert("RGBA")
    assert torch.equal(pixels(processor, rgba), pixels(processor, face_rgb))
    transparent = rgba.copy()
    transparent.putalpha(0)
    white = Image.new("L", face_rgb.size, 255)
    assert torch.equal(pixels(processor, transparent), pixels(processor, white))


def test_sixteen_bit_matches_eight_bit(processor):
    face = Image.open(sorted((CKPLUS / "happy").glob("*.png"))[0])
    assert face.mode == "L"
    wide = Image.fromarray(np.asarray(face).astype(np.uint16) * 257)
    assert wide.mode.startswith("I;16")
    assert torch.equal(pixels(processor, wide), pixels(processor, face))
    # same through PIL's 32-bit integer mode "I"
    assert torch.equal(pixels(processor, wide.convert("I")), pixels(processor, face))


def test_palette_and_cmyk(processor, face_rgb):
    palette = face_rgb.convert("P", palette=Image.ADAPTIVE, colors=256)
    cmyk = face_rgb.convert("CMYK")
    reference = pixels(processor, face_rgb)
    for image in (palette, cmyk):
        values = pixels(processor, image)
        assert values.shape == reference.shape
        # palette quantisation / CMYK round trip change pixels a little, not the face
        assert (values - reference).abs().mean() < 0.1


def test_exif_orientation_is_applied(processor, face_rgb):
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    wide = face_rgb.resize((96, 64))
    wide.save(buffer, format="JPEG", exif=exif, quality=95)
    reloaded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))  # raw pixels, EXIF ignored
    assert decoded.shape[:2] == (64, 96)
    upright = Image.fromarray(np.rot90(decoded, k=-1).copy())  # orientation 6 = rotate 90 degrees clockwise
    assert torch.equal(pixels(processor, reloaded), pixels(processor, upright))
    assert not torch.equal(pixels(processor, reloaded), pixels(processor, Image.fromarray(decoded)))


def test_numpy_and_torch_inputs(processor, face_rgb):
    array = np.asarray(face_rgb)
    reference = pixels(processor, face_rgb)
    assert torch.equal(pixels(processor, array), reference)
    assert torch.equal(pixels(processor, torch.from_numpy(array).permute(2, 0, 1)), reference)
    assert torch.equal(pixels(processor, array.astype(np.float32) / 255.0), reference)


def test_batch_and_determinism(processor, face_rgb):
    batch = processor([face_rgb, face_rgb.convert("L"), face_rgb], return_tensors="pt")["pixel_values"]
    assert batch.shape == (3, 1, 48, 48)
    assert torch.equal(batch[0], batch[2]) and torch.equal(batch[0], batch[1])


def test_a_datasets_image_column_is_a_batch(processor):
    """``processor(ds["image"])`` on real CK+ faces: datasets >= 4 returns a lazy column, not a list; it (and any
    other iterable of images) is read as the batch of its images."""
    import datasets

    paths = [str(p) for p in sorted((CKPLUS / "happy").glob("*.png"))[:5]]
    ds = datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image())
    faces = [Image.open(p) for p in paths]
    reference = processor(faces, return_tensors="pt")["pixel_values"]
    assert reference.shape == (5, 1, 48, 48)
    assert torch.equal(processor(ds["image"], return_tensors="pt")["pixel_values"], reference)
    assert torch.equal(processor(iter(faces), return_tensors="pt")["pixel_values"], reference)


def test_bad_inputs_raise_clear_errors(processor):
    with pytest.raises(TypeError):
        processor("not an image")
    with pytest.raises(ValueError):
        processor(np.zeros((4, 5, 6, 7), dtype=np.uint8))
    with pytest.raises(ValueError):
        processor([])


def test_save_and_reload(processor, tmp_path, face_rgb):
    processor.save_pretrained(tmp_path)
    reloaded = FerImageProcessor.from_pretrained(tmp_path)
    assert torch.equal(pixels(reloaded, face_rgb), pixels(processor, face_rgb))


def test_equal_decode_settings_decode_alike_and_unequal_ones_are_told_apart(face_rgb):
    """`decode_settings` keys the decoded-face cache of `build_ensemble`: a released config without
    ``do_grayscale`` (fer-vgg-fer2013's) decodes like the ensemble's, a 3-channel or 40x40 one does not."""
    from conftest import REPO
    from transformers import AutoImageProcessor

    old = AutoImageProcessor.from_pretrained(REPO / "model_cards" / "fer-vgg-fer2013")
    new = AutoImageProcessor.from_pretrained(REPO / "model_cards" / "fer-ensemble")
    assert "do_grayscale" not in (REPO / "model_cards" / "fer-vgg-fer2013" / "preprocessor_config.json").read_text()
    assert old.decode_settings() == new.decode_settings()
    faces = [face_rgb, Image.open(SAMPLES / "angry.jpg"), face_rgb.convert("L").resize((300, 200))]
    for face in faces:
        np.testing.assert_array_equal(old.convert_and_resize(face), new.convert_and_resize(face))
    rgb = FerImageProcessor(num_channels=3)
    small = FerImageProcessor(num_channels=1, size={"height": 40, "width": 40})
    colour = FerImageProcessor(num_channels=3, do_grayscale=False)
    settings = {p.decode_settings() for p in (new, rgb, small, colour)}
    assert len(settings) == 4
    assert not np.array_equal(rgb.convert_and_resize(face_rgb), colour.convert_and_resize(face_rgb))
