"""Images users hand in: 16-bit PNGs at full precision, TIFF, and one line for what cannot be read."""
import numpy as np
import png
import pytest
from PIL import Image

from n2n_live.errors import UserError
from n2n_live.images import read_ldr


def _ramp16(h=32, w=48, planes=3) -> np.ndarray:
    v = np.linspace(0, 65535, h * w * planes).round().astype(np.uint16)
    return v.reshape(h, w, planes)


def test_16_bit_rgb_png_is_read_at_full_precision(tmp_path):
    a = _ramp16()
    png.from_array(a.reshape(a.shape[0], -1), "RGB;16").save(str(tmp_path / "rgb16.png"))
    got = read_ldr(tmp_path / "rgb16.png")
    assert got.shape == a.shape and got.dtype == np.float32
    assert np.abs(got - a / 65535.0).max() < 1e-6  # 8-bit decoding is off by up to 1/510


def test_16_bit_greyscale_png_is_not_saturated(tmp_path):
    a = _ramp16(planes=1)[..., 0]
    Image.fromarray(a).save(tmp_path / "g16.png")
    got = read_ldr(tmp_path / "g16.png")
    assert got.shape == (*a.shape, 3)
    assert np.abs(got[..., 1] - a / 65535.0).max() < 1e-6
    assert (got > 0.999).mean() < 0.01  # through Pillow's RGB conversion 99 % of the pixels were white
    assert np.abs(read_ldr(tmp_path / "g16.png", channels=1)[..., 0] - a / 65535.0).max() < 1e-6


def test_8_bit_png_jpeg_and_tiff(tmp_path):
    a = (np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)
    for name in ("x.png", "x.tif", "x.tiff", "x.bmp"):
        Image.fromarray(a).save(tmp_path / name)
        assert np.array_equal(read_ldr(tmp_path / name), a / np.float32(255.0)), name
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    with Image.open(tmp_path / "x.jpg") as im:
        assert np.array_equal(read_ldr(tmp_path / "x.jpg"), np.asarray(im.convert("RGB"), np.float32) / 255.0)
    grey = read_ldr(tmp_path / "x.png", channels=1)
    assert grey.shape == (16, 24, 1)
    assert np.array_equal(grey[..., 0], np.asarray(Image.fromarray(a).convert("L"), np.float32) / 255.0)


@pytest.mark.parametrize("name,writer", [
    ("bomb8.png", lambda p: Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(p)),
    ("bomb16.png", lambda p: png.from_array(_ramp16(64, 64).reshape(64, -1), "RGB;16").save(str(p))),
])
def test_too_many_pixels_is_one_line(name, writer, tmp_path, monkeypatch):
    writer(tmp_path / name)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # as if the header claimed 30000x30000
    with pytest.raises(UserError, match=f"{name}: refused: too many pixels"):
        read_ldr(tmp_path / name)


def test_damaged_and_unsupported_files_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match="bad.png: not a readable image"):
        read_ldr(tmp_path / "bad.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(UserError, match="x.gif: unsupported image type"):
        read_ldr(tmp_path / "x.gif")
    with pytest.raises(UserError, match="no such image file"):
        read_ldr(tmp_path / "missing.png")
