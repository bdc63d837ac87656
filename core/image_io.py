"""Reading and writing frames: Unicode-safe paths, clear errors, atomic writes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.errors import UserError
from core.fileio import atomic_write_bytes


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file as BGR uint8, or raise a UserError saying it is unreadable or truncated."""
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # cv2.imread fails on non-ASCII paths on Windows
    except OSError as e:
        raise UserError(f"cannot read image ({e.strerror or e})", path) from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError("unreadable or truncated image", path)
    return image


def encode_image(image: np.ndarray, ext: str, jpeg_quality: int = 90) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise UserError(f"could not encode an image as {ext}")
    return buf.tobytes()


def write_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 90) -> None:
    """Encode by the file's extension and write atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(image, path.suffix, jpeg_quality))
