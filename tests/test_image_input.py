"""Reading image files: only the project's decoders, each file decoded once, size limits that hold."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile
from skimage import data

from gfp_core.errors import InvalidImageError
from gfp_core.image import read_picture, write_image


@pytest.fixture
def decodes(monkeypatch) -> dict:
    """Counts of full decodes: by Pillow (every decode pass, PNG or TIFF, plain or libtiff, starts in
    ``ImageFile.load_prepare``) and by OpenCV (``cv2.imdecode``). Counters only: the real code runs."""
    counts = {"pillow": 0, "opencv": 0}
    prepare, imdecode = ImageFile.ImageFile.load_prepare, cv2.imdecode

    def counted_prepare(self):
        counts["pillow"] += 1
        return prepare(self)

    def counted_imdecode(*args, **kwargs):
        counts["opencv"] += 1
        return imdecode(*args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", counted_prepare)
    monkeypatch.setattr(cv2, "imdecode", counted_imdecode)
    return counts


def _photo() -> np.ndarray:
    return data.astronaut()[::8, ::8].copy()  # 64×64 RGB


def _files(folder: Path) -> dict[str, tuple[Path, np.ndarray, str]]:
    """name → (file, expected pixels, who should decode it)."""
    rgb = _photo()
    deep = rgb.astype(np.uint16) * 257 + np.arange(64, dtype=np.uint16)[None, :, None]  # real 16-bit detail
    alpha = np.full(rgb.shape[:2], 77, np.uint8)
    files = {}
    Image.fromarray(rgb).save(folder / "rgb8.png")
    files["rgb8.png"] = (folder / "rgb8.png", rgb, "pillow")
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba8.png")
    files["rgba8.png"] = (folder / "rgba8.png", np.dstack([rgb, alpha]), "pillow")
    Image.fromarray(rgb).save(folder / "rgb8.tif")  # uncompressed: Pillow's own decoder
    files["rgb8.tif"] = (folder / "rgb8.tif", rgb, "pillow")
    Image.fromarray(rgb).save(folder / "rgb8_deflate.tif", compression="tiff_deflate")  # through libtiff
    files["rgb8_deflate.tif"] = (folder / "rgb8_deflate.tif", rgb, "pillow")
    Image.fromarray(rgb[..., 0]).save(folder / "grey8.png")
    files["grey8.png"] = (folder / "grey8.png", rgb[..., 0], "pillow")
    write_image(folder / "grey16.png", deep[..., 0])
    files["grey16.png"] = (folder / "grey16.png", deep[..., 0], "pillow")  # PIL reads 16-bit grey itself
    write_image(folder / "rgb16.png", deep)
    files["rgb16.png"] = (folder / "rgb16.png", deep, "opencv")
    write_image(folder / "rgba16.tif", np.dstack([deep, deep[..., 1]]))
    files["rgba16.tif"] = (folder / "rgba16.tif", np.dstack([deep, deep[..., 1]]), "opencv")
    return files


def test_every_file_is_decoded_once_by_one_decoder(tmp_path, decodes):
    for name, (path, expected, decoder) in _files(tmp_path).items():
        decodes.update(pillow=0, opencv=0)
        picture = read_picture(path)
        assert decodes == {"pillow": int(decoder == "pillow"), "opencv": int(decoder == "opencv")}, name
        assert np.array_equal(picture.rebuild(picture.rgb), expected), name  # mode, depth and pixels kept


def test_cmyk_palette_and_exif_files_are_decoded_once(tmp_path, decodes):
    rgb = _photo()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    rotated = Image.fromarray(rgb[:, :40]).transpose(Image.Transpose.ROTATE_90)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rotated.save(tmp_path / "exif.png", exif=exif)
    shapes = {}
    for name in ("cmyk.jpg", "palette.gif", "exif.png"):
        decodes.update(pillow=0, opencv=0)
        shapes[name] = read_picture(tmp_path / name).rgb.shape
        assert decodes == {"pillow": 1, "opencv": 0}, name
    assert shapes == {"cmyk.jpg": (64, 64, 3), "palette.gif": (64, 64, 3), "exif.png": (64, 40, 3)}
    assert np.array_equal(read_picture(tmp_path / "exif.png").rgb, rgb[:, :40])  # upright again


def _fake_ghostscript(folder: Path, marker: Path) -> dict:
    """An environment whose first `gs` on PATH only leaves ``marker`` behind, so a test can tell
    whether Ghostscript would have been started."""
    folder.mkdir()
    gs = folder / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 1\n")
    gs.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_postscript_named_png_never_reaches_ghostscript(tmp_path, tiny_checkpoint):
    eps = tmp_path / "in" / "x.png"
    eps.parent.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(eps, format="EPS")  # Pillow writes EPS without gs
    assert eps.read_bytes().startswith(b"%!PS")
    marker = tmp_path / "ghostscript-ran"
    env = _fake_ghostscript(tmp_path / "bin", marker)
    env.update(HF_HUB_OFFLINE="1", GFP_HOME=str(tmp_path / "home"), GFP_MODEL_DIRS="")
    result = subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(eps), "--aligned", "-m",
                             str(tiny_checkpoint), "-o", str(tmp_path / "out")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 1, result.stderr
    assert f"{eps}: not a supported image format (it is EPS; use PNG, JPEG, WebP, TIFF, BMP, GIF)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists(), "Ghostscript was started"
    assert not (tmp_path / "out" / "restored_imgs" / "x.png").exists()


@pytest.mark.parametrize("content", [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
                                     b"P6\n4 4\n255\n" + bytes(48)], ids=["pdf", "ppm"])
def test_other_formats_named_png_are_refused(tmp_path, content):
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError, match="not a supported image format|not a readable image"):
        read_picture(path)


def _bilevel_png(path: Path, width: int, height: int) -> None:
    """A white 1-bit PNG written row by row: a 200 MP file of a few kB, made in a fraction of a second."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    row = b"\x00" + b"\xff" * ((width + 7) // 8)  # filter byte, then 8 pixels a byte
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_max_pixels_beyond_pillows_own_limit(tmp_path, monkeypatch, decodes, recwarn):
    """Pillow refuses images over twice its MAX_IMAGE_PIXELS as decompression bombs; our own limit,
    checked before decoding, is the one that counts, and Pillow's stays in force for other code."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # Pillow's ~89 MP, scaled down
    path = tmp_path / "wide.png"
    _bilevel_png(path, 1000, 300)  # 300,000 pixels: over twice Pillow's limit
    picture = read_picture(path, max_pixels=400_000)
    assert picture.rgb.shape == (300, 1000, 3) and picture.grey and picture.rgb.min() == 255
    assert Image.MAX_IMAGE_PIXELS == 100_000
    with pytest.raises(Image.DecompressionBombError):  # other code still has Pillow's protection
        Image.open(path)

    decodes.update(pillow=0)
    with pytest.raises(InvalidImageError, match=r"1000x300 is 0.3 megapixels, over the limit of 0.2; raise the limit \(max_pixels\) if you have"):
        read_picture(path, max_pixels=200_000)  # between Pillow's warning and error
    with pytest.raises(InvalidImageError, match=r"wide.png: 0.3 megapixels, over the limit of 0.05; raise the limit \(max_pixels\)"):
        read_picture(path, max_pixels=50_000)  # Pillow's own refusal, reported as ours
    assert decodes["pillow"] == 0  # refused before decoding
    assert Image.MAX_IMAGE_PIXELS == 100_000
    # our reads say it in their own words only (the Image.open above warned nothing: it raised)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.heavy
def test_200_megapixel_photo_with_a_raised_limit(tmp_path, decodes):
    """Measured: about 2.5 s and 1.5 GB (the 600 MB RGB picture and Pillow's 8-bit copies)."""
    path = tmp_path / "huge.png"
    _bilevel_png(path, 14143, 14143)  # 200,024,449 pixels, 42 kB on disk
    with pytest.raises(InvalidImageError, match=r"huge.png: 200 megapixels, over the limit of 100; raise the limit \(max_pixels\)"):
        read_picture(path)  # the default still refuses, before decoding
    assert decodes["pillow"] == 0
    picture = read_picture(path, max_pixels=300_000_000)
    assert picture.rgb.shape == (14143, 14143, 3) and picture.rgb[-1, -1, 0] == 255
    assert decodes["pillow"] == 1
