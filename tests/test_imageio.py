"""load_image: every format, colour mode and array kind; every bad input; the pixel limit."""

from __future__ import annotations

import csv
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from faceprint.errors import FaceprintError, ImageTooLargeError, InvalidImageError
from faceprint.imageio import DEFAULT_MAX_PIXELS, describe_source, load_image

LFW_FACE = "lfw/lfw-deepfunneled/George_W_Bush/George_W_Bush_0001.jpg"


@pytest.fixture(scope="module")
def misc(data_dir: Path) -> Path:
    return data_dir / "misc"


@pytest.fixture(scope="module")
def catalogue(misc: Path) -> dict[str, dict[str, str]]:
    with open(misc / "images.csv", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def lfw_path(data_dir: Path) -> Path:
    return data_dir / LFW_FACE


@pytest.fixture(scope="module")
def lfw_rgb(lfw_path: Path) -> np.ndarray:
    """The reference pixels, decoded by Pillow directly: (250, 250, 3) uint8."""
    with Image.open(lfw_path) as im:
        return np.asarray(im.convert("RGB"))


def assert_rgb(arr: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert arr.flags.c_contiguous and arr.flags.writeable
    if shape is not None:
        assert arr.shape[:2] == shape


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header claims width x height RGB and whose data is 10 zero bytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------- real files in misc/


@pytest.mark.parametrize(
    "file",
    [
        "obama.jpg",  # JPEG RGB
        "grayscale_face.png",  # L
        "einstein_palette.png",  # P
        "32bit_rgba.png",  # RGBA
        "no_face_small.png",  # RGBA
        "einstein.webp",  # WebP
        "exif_orientation6.jpg",  # EXIF orientation 6
    ],
)
def test_misc_files_load_as_rgb(misc: Path, catalogue: dict, file: str) -> None:
    row = catalogue[file]
    width, height = int(row["width"]), int(row["height"])
    if row["exif_orientation"] in {"5", "6", "7", "8"}:  # a quarter turn swaps the sides
        width, height = height, width
    assert_rgb(load_image(misc / file), (height, width))


def test_path_as_str_and_pathlike_agree(misc: Path) -> None:
    path = misc / "obama_small.jpg"
    np.testing.assert_array_equal(load_image(str(path)), load_image(path))


def test_exif_orientation_is_applied(misc: Path) -> None:
    img = load_image(misc / "exif_orientation6.jpg")
    assert img.shape[0] > img.shape[1], "EXIF orientation 6 must give a portrait image"
    with Image.open(misc / "exif_orientation6.jpg") as im:
        stored = np.asarray(im.convert("RGB"))
    # Orientation 6: the stored pixels are shown turned a quarter clockwise.
    np.testing.assert_array_equal(img, np.rot90(stored, k=-1))


def test_grayscale_png_is_replicated(misc: Path) -> None:
    img = load_image(misc / "grayscale_face.png")
    with Image.open(misc / "grayscale_face.png") as im:
        assert im.mode == "L"
        gray = np.asarray(im)
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], gray)


def test_palette_png(misc: Path) -> None:
    with Image.open(misc / "einstein_palette.png") as im:
        assert im.mode == "P"
        expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(load_image(misc / "einstein_palette.png"), expected)


def test_opaque_rgba_png_drops_alpha(misc: Path) -> None:
    with Image.open(misc / "32bit_rgba.png") as im:
        assert im.mode == "RGBA"
        rgba = np.asarray(im)
    np.testing.assert_array_equal(load_image(misc / "32bit_rgba.png"), rgba[:, :, :3])


def test_translucent_rgba_png_is_composited_over_white(lfw_rgb: np.ndarray, tmp_path: Path) -> None:
    alpha = np.tile(np.linspace(0, 255, lfw_rgb.shape[1]).round().astype(np.uint8), (lfw_rgb.shape[0], 1))
    path = tmp_path / "fade.png"
    Image.fromarray(np.dstack([lfw_rgb, alpha]), "RGBA").save(path)
    a = alpha[:, :, None] / 255.0
    expected = np.rint(lfw_rgb * a + 255.0 * (1.0 - a))
    got = load_image(path).astype(np.float64)
    assert np.abs(got - expected).max() <= 1.0
    np.testing.assert_array_equal(got[:, 0], 255.0)  # fully transparent column: white
    np.testing.assert_array_equal(got[:, -1], lfw_rgb[:, -1])  # opaque column: unchanged


def test_webp_matches_png_of_same_portrait(misc: Path) -> None:
    webp = load_image(misc / "einstein.webp").astype(int)
    png = load_image(misc / "einstein_palette.png").astype(int)
    assert webp.shape == png.shape
    assert np.abs(webp - png).mean() < 20  # same picture, different lossy encodings


def test_very_large_photo_loads_under_default_limit(misc: Path) -> None:
    assert 6988 * 4664 < DEFAULT_MAX_PIXELS
    img = load_image(misc / "compreface_003_A_6988x4664.jpg")
    assert_rgb(img, (4664, 6988))


# ------------------------------------------------------------- formats generated from a real face


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_round_trip(lfw_rgb: np.ndarray, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"face.{fmt.lower()}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(lfw_rgb).save(path, fmt, **kwargs)
    np.testing.assert_array_equal(load_image(path), lfw_rgb)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path, fmt: str) -> None:
    values = np.array([[0, 128, 257, 1000, 32896, 40000, 65535]], dtype=np.uint16)
    path = tmp_path / f"gray16.{fmt.lower()}"
    Image.fromarray(values).save(path, fmt)
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I;16B", "I")  # really 16-bit on disk
    img = load_image(path)
    expected = np.rint(values / 257.0).astype(np.uint8)  # [0, 0, 1, 4, 128, 156, 255]
    np.testing.assert_array_equal(img[:, :, 0], expected)
    np.testing.assert_array_equal(img[:, :, 1], expected)


def test_16bit_png_of_real_face(lfw_rgb: np.ndarray, tmp_path: Path) -> None:
    gray8 = np.asarray(Image.fromarray(lfw_rgb).convert("L"))
    path = tmp_path / "face16.png"
    Image.fromarray(gray8.astype(np.uint16) * 257).save(path)
    np.testing.assert_array_equal(load_image(path)[:, :, 0], gray8)


def test_32bit_integer_pil_image(lfw_rgb: np.ndarray) -> None:
    gray8 = np.asarray(Image.fromarray(lfw_rgb).convert("L"))
    im = Image.fromarray(gray8.astype(np.int32) * 257)
    assert im.mode == "I"
    np.testing.assert_array_equal(load_image(im)[:, :, 2], gray8)
    with pytest.raises(InvalidImageError, match="32-bit"):
        load_image(Image.fromarray(np.full((4, 4), 70000, np.int32)))


def test_cmyk_jpeg(lfw_rgb: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(lfw_rgb).convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    img = load_image(path)
    assert_rgb(img, lfw_rgb.shape[:2])
    assert np.abs(img.astype(int) - lfw_rgb.astype(int)).mean() < 6


def test_ycbcr_pil_image(lfw_rgb: np.ndarray) -> None:
    im = Image.fromarray(lfw_rgb).convert("YCbCr")
    assert np.abs(load_image(im).astype(int) - lfw_rgb.astype(int)).max() <= 3


def test_gif_first_frame(lfw_rgb: np.ndarray, tmp_path: Path) -> None:
    first = Image.fromarray(lfw_rgb)
    second = Image.fromarray(255 - lfw_rgb)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 2
        expected = np.asarray(im.convert("RGB"))  # frame 0, palette-quantised
    img = load_image(path)
    np.testing.assert_array_equal(img, expected)
    assert np.abs(img.astype(int) - lfw_rgb.astype(int)).mean() < 20  # the face, not its negative


def test_palette_with_transparency_becomes_white() -> None:
    im = Image.new("P", (4, 2), 0)
    im.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    im.putpixel((0, 0), 1)
    im.info["transparency"] = 0  # palette index 0 (black) is transparent
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=0)
    img = load_image(buf.getvalue())
    np.testing.assert_array_equal(img[0, 0], [200, 10, 10])
    np.testing.assert_array_equal(img[1, 3], [255, 255, 255])


def test_la_png() -> None:
    la = np.zeros((2, 2, 2), np.uint8)
    la[0, 0] = [10, 255]  # opaque dark
    la[0, 1] = [10, 0]  # transparent
    la[1, 0] = [0, 128]  # half-transparent black
    data = encode(Image.fromarray(la, "LA"), "PNG")
    img = load_image(data)
    np.testing.assert_array_equal(img[0, 0], [10, 10, 10])
    np.testing.assert_array_equal(img[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(img[1, 0], [127, 127, 127])


def test_bilevel_png() -> None:
    bits = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    np.testing.assert_array_equal(load_image(encode(bits, "PNG"))[0], [[0, 0, 0], [255, 255, 255]])


# ------------------------------------------------------------------------- bytes and PIL inputs


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_input(lfw_path: Path, kind: type) -> None:
    data = kind(lfw_path.read_bytes())
    np.testing.assert_array_equal(load_image(data), load_image(lfw_path))


def test_pil_input_lazy_and_loaded(lfw_path: Path, lfw_rgb: np.ndarray) -> None:
    with Image.open(lfw_path) as im:  # not yet decoded
        np.testing.assert_array_equal(load_image(im), lfw_rgb)
    loaded = Image.fromarray(lfw_rgb)
    out = load_image(loaded)
    np.testing.assert_array_equal(out, lfw_rgb)
    out[:] = 0  # the result is a copy, not the PIL image's memory
    assert np.asarray(loaded).any()


def test_pil_input_exif_orientation_applied(misc: Path) -> None:
    with Image.open(misc / "exif_orientation6.jpg") as im:
        img = load_image(im)
    assert img.shape[0] > img.shape[1]


# ------------------------------------------------------------------------------- numpy inputs


def test_numpy_rgb_is_copied_and_contiguous(lfw_rgb: np.ndarray) -> None:
    out = load_image(lfw_rgb)
    np.testing.assert_array_equal(out, lfw_rgb)
    assert not np.shares_memory(out, lfw_rgb)
    bgr_view = lfw_rgb[:, :, ::-1]  # a non-contiguous view, as from cv2 BGR flipping
    out = load_image(bgr_view)
    assert_rgb(out)
    np.testing.assert_array_equal(out, bgr_view)


def test_numpy_gray_and_single_channel(lfw_rgb: np.ndarray) -> None:
    gray = lfw_rgb[:, :, 1].copy()
    for arr in (gray, gray[:, :, None]):
        out = load_image(arr)
        assert_rgb(out, gray.shape)
        np.testing.assert_array_equal(out, np.dstack([gray] * 3))


def test_numpy_rgba_over_white() -> None:
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 128]]], np.uint8)
    np.testing.assert_array_equal(load_image(rgba)[0], [[10, 20, 30], [255, 255, 255], [127, 127, 127]])


def test_numpy_uint16_and_float(lfw_rgb: np.ndarray) -> None:
    np.testing.assert_array_equal(load_image(lfw_rgb.astype(np.uint16) * 257), lfw_rgb)
    for dtype in (np.float16, np.float32, np.float64):
        as_float = (lfw_rgb / 255.0).astype(dtype)
        tolerance = 2 if dtype == np.float16 else 1  # float16 cannot hold every k/255 exactly
        assert np.abs(load_image(as_float).astype(int) - lfw_rgb.astype(int)).max() <= tolerance
    np.testing.assert_array_equal(load_image(np.array([[0.0, 0.5, 1.0]]))[0, :, 0], [0, 128, 255])


@pytest.mark.parametrize(
    ("arr", "words"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.zeros((5, 0, 3), np.uint8), "empty"),
        (np.zeros((5,), np.uint8), "shape"),
        (np.zeros((2, 5, 5, 3), np.uint8), "shape"),
        (np.zeros((5, 5, 2), np.uint8), "shape"),
        (np.zeros((5, 5, 5), np.uint8), "shape"),
        (np.ones((5, 5), bool), "boolean"),
        (np.full((5, 5), np.nan), "NaN"),
        (np.full((5, 5), np.inf, np.float32), "infinite"),
        (np.full((5, 5), 200.0), r"\[0, 1\]"),
        (np.full((5, 5), -0.5), r"\[0, 1\]"),
        (np.zeros((5, 5), np.int64), "dtype int64"),
        (np.zeros((5, 5), np.int8), "dtype int8"),
        (np.zeros((5, 5), np.uint32), "dtype uint32"),
        (np.zeros((5, 5), object), "dtype object"),
        (np.zeros((5, 5), np.complex64), "dtype complex64"),
    ],
)
def test_bad_arrays(arr: np.ndarray, words: str) -> None:
    with pytest.raises(InvalidImageError, match=words) as info:
        load_image(arr)
    assert "<array (" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FaceprintError)


# ------------------------------------------------------------------------------ invalid inputs


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("corrupted.png", "not a recognised image format"),
        ("empty.png", "not a recognised image format"),
        ("truncated.jpg", "truncated"),
    ],
)
def test_invalid_files(misc: Path, file: str, words: str) -> None:
    path = misc / "invalid" / file
    with pytest.raises(InvalidImageError, match=words) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, ImageTooLargeError)


def test_truncated_file_as_bytes(misc: Path) -> None:
    with pytest.raises(InvalidImageError, match="truncated"):
        load_image((misc / "invalid" / "truncated.jpg").read_bytes())


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "no_such_photo.jpg"
    with pytest.raises(InvalidImageError, match="no such file") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="directory") as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_zero_byte_file_and_text_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty \(0 bytes\)") as info:
        load_image(empty)
    assert str(empty) in str(info.value)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a JPEG\n")
    with pytest.raises(InvalidImageError, match="not a recognised image format") as info:
        load_image(text)
    assert str(text) in str(info.value)


def test_bad_bytes_and_types() -> None:
    with pytest.raises(InvalidImageError, match="0 bytes"):
        load_image(b"")
    with pytest.raises(InvalidImageError, match=r"<bytes: 9 B>.*not a recognised"):
        load_image(b"not a jpg")
    with pytest.raises(InvalidImageError, match="unsupported source type list"):
        load_image([[0, 0, 0]])  # type: ignore[arg-type]


def test_name_is_used_in_messages() -> None:
    with pytest.raises(InvalidImageError, match="'upload.png'"):
        load_image(b"garbage", name="upload.png")


# --------------------------------------------------------------------------------- pixel limit


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel data is decoded."""

    def refuse(self: Image.Image) -> None:
        pytest.fail("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image.Image, "load", refuse)


@pytest.mark.parametrize(
    ("width", "height", "size_text"),
    [
        (8000, 6000, "8000x6000 = 48.0 megapixels"),  # over our limit, under Pillow's
        (10000, 10000, "10000x10000 = 100.0 megapixels"),  # over Pillow's warning threshold
        (100000, 100000, "10000.0 megapixels"),  # over twice Pillow's limit: Pillow refuses first
    ],
)
def test_bomb_refused_from_header(
    tmp_path: Path, no_decoding: None, width: int, height: int, size_text: str
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(width, height))
    assert path.stat().st_size < 100
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message
    assert size_text in message
    assert "40.0 megapixels" in message
    assert "max_pixels" in message and "--max-pixels" in message
    assert isinstance(info.value, InvalidImageError) and isinstance(info.value, ValueError)


def test_small_limit_on_real_image(
    lfw_path: Path, lfw_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = 250 * 250
    np.testing.assert_array_equal(load_image(lfw_path, max_pixels=pixels), lfw_rgb)
    with monkeypatch.context() as m:
        m.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
        with pytest.raises(ImageTooLargeError, match=r"250x250 .* \(62,499 pixels\)"):
            load_image(lfw_path, max_pixels=pixels - 1)
    with pytest.raises(ImageTooLargeError):
        load_image(lfw_path.read_bytes(), max_pixels=pixels - 1)
    with pytest.raises(ImageTooLargeError):
        load_image(lfw_rgb, max_pixels=pixels - 1)
    with pytest.raises(ImageTooLargeError):
        load_image(Image.fromarray(lfw_rgb), max_pixels=pixels - 1)


def test_limit_above_pillows_own(
    lfw_path: Path, lfw_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our max_pixels wins over Pillow's global guard, which is left as it was."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 250x250 is over twice this
    filters = list(warnings.filters)
    np.testing.assert_array_equal(load_image(lfw_path, max_pixels=None), lfw_rgb)
    np.testing.assert_array_equal(load_image(lfw_path, max_pixels=100_000), lfw_rgb)
    # A limit under twice Pillow's: Pillow refuses from the header and we report it as ours.
    with pytest.raises(ImageTooLargeError, match=r"0\.1 megapixels, more than the limit"):
        load_image(lfw_path, max_pixels=1500)
    assert Image.MAX_IMAGE_PIXELS == 1000
    assert list(warnings.filters) == filters


def test_pillow_global_state_untouched(lfw_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    load_image(lfw_path)
    load_image(lfw_path, max_pixels=None)
    with pytest.raises(ImageTooLargeError):
        load_image(png_header_only(100000, 100000))
    assert Image.MAX_IMAGE_PIXELS == before
    assert list(warnings.filters) == filters


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "100"])
def test_bad_max_pixels(lfw_rgb: np.ndarray, bad: object) -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(lfw_rgb, max_pixels=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ describe_source


def test_describe_source(tmp_path: Path) -> None:
    assert describe_source(tmp_path / "a.jpg") == str(tmp_path / "a.jpg")
    assert describe_source("a.jpg") == "a.jpg"
    assert describe_source(b"x" * 1234) == "<bytes: 1234 B>"
    assert describe_source(bytearray(3)) == "<bytes: 3 B>"
    assert describe_source(memoryview(b"abcd")) == "<bytes: 4 B>"
    assert describe_source(Image.new("RGB", (2, 2))) == "<PIL image>"
    assert describe_source(np.zeros((4, 5, 3), np.uint8)) == "<array (4,5,3) uint8>"
    assert describe_source(42) == "<int>"
