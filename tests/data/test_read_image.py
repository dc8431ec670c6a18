"""read_image: what counts as a whole image, and every way an image file can be bad ending in a DataError naming it."""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.data import DataError, DataWarning, read_image
from zoo.data.image_list import ImageList


def photo(flags: tuple = ()) -> bytes:
    """A real JPEG: a smooth gradient with some noise, 120x160."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 160, dtype=np.float32)[None, :, None] * np.ones((120, 1, 3), np.float32)
    image = np.clip(ramp + rng.normal(0, 20, ramp.shape), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90, *flags])
    assert ok
    return encoded.tobytes()


# A camera or phone trailer: vendor tags, a stray marker-like byte pair, padding.
TRAILER = b"SEFH" + bytes(range(256)) + b"\xff\xe1\x00\x10 trailing vendor data \xff\xd8" + b"\x00" * 40


@pytest.mark.parametrize("flags", [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (cv2.IMWRITE_JPEG_RST_INTERVAL, 2)],
                         ids=["baseline", "progressive", "restart-markers"])
def test_a_jpeg_with_a_trailer_reads_as_the_original(tmp_path, flags):
    data = photo(flags)
    (tmp_path / "plain.jpg").write_bytes(data)
    (tmp_path / "trailer.jpg").write_bytes(data + TRAILER)
    np.testing.assert_array_equal(read_image(str(tmp_path / "trailer.jpg")), read_image(str(tmp_path / "plain.jpg")))


def with_thumbnail(data: bytes) -> bytes:
    """``data`` with an EXIF-like APP1 segment after its SOI holding a whole small JPEG (markers, end-of-image and
    all), as cameras store a thumbnail."""
    ok, thumb = cv2.imencode(".jpg", np.full((8, 8, 3), 200, np.uint8))
    body = b"Exif\x00\x00" + thumb.tobytes()
    return data[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]


def test_a_jpeg_with_a_thumbnail_and_a_trailer_reads_as_the_original(tmp_path):
    (tmp_path / "plain.jpg").write_bytes(photo())
    (tmp_path / "both.jpg").write_bytes(with_thumbnail(photo()) + TRAILER)
    np.testing.assert_array_equal(read_image(str(tmp_path / "both.jpg")), read_image(str(tmp_path / "plain.jpg")))


@pytest.mark.parametrize("flags", [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)], ids=["baseline", "progressive"])
def test_a_jpeg_cut_in_half_is_refused_naming_the_file(tmp_path, flags):
    data = photo(flags)
    (tmp_path / "thumb_half.jpg").write_bytes(with_thumbnail(data)[:len(data) // 2 + 700])  # the thumbnail is whole
    with pytest.raises(DataError, match=r"thumb_half\.jpg: truncated JPEG"):
        read_image(str(tmp_path / "thumb_half.jpg"))
    for name, cut in (("half.jpg", data[:len(data) // 2]), ("no_end.jpg", data[:-2]),
                      ("half_then_zeros.jpg", data[:len(data) // 2] + b"\x00" * 300)):
        (tmp_path / name).write_bytes(cut)
        with pytest.raises(DataError, match=rf"{name}: truncated JPEG"):
            read_image(str(tmp_path / name))


def png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A valid 1-bit greyscale PNG of the declared size, all black unless ``rows`` (filtered scanlines) is given."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = rows if rows is not None else (b"\x00" * (1 + (width + 7) // 8)) * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """32769 x 32769 (2^30 + 65537 pixels, just over OpenCV's default cap) in about 130 KB."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    path.write_bytes(png(32769, 32769))
    return path


def test_the_png_builder_makes_readable_images(tmp_path):
    (tmp_path / "small.png").write_bytes(png(20, 10))
    image = read_image(str(tmp_path / "small.png"))
    assert image.shape == (10, 20, 3) and not image.any()


def test_an_image_over_opencvs_pixel_cap_is_a_data_error_naming_file_and_cap(huge_png):
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        read_image(str(huge_png))
    message = str(err.value)
    assert "\n" not in message and str(huge_png) in message
    assert "32769x32769" in message and "1073807361 pixels" in message and "1073741824" in message
    assert "OPENCV_IO_MAX_IMAGE_PIXELS" in message
    assert time.perf_counter() - start < 1.0  # refused from the header: nothing is decoded


def test_with_skip_bad_an_image_over_the_cap_is_left_out_and_counted(huge_png, tmp_path):
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((30, 40, 3), 90, np.uint8))
    images = ImageList([str(tmp_path / "ok.png"), str(huge_png)], ["a"], skip_bad=True)
    assert images[0]["image"].shape == (30, 40, 3)
    with pytest.warns(DataWarning, match=r"huge\.png: .*too many pixels.*left out"):
        assert images[1] is None
    with pytest.raises(DataError, match=r"huge\.png: .*too many pixels"):
        ImageList([str(huge_png)], ["a"])[0]
