"""Random geometric augmentation for training: a random affine (rotate, scale, shift, flip) and a
random smooth grid warp, DFL's `gen_warp_params` / `warp_by_params` behaviour.

Why one parameter object: a training sample's input and target must share the affine and the flip,
while only the input gets the warp, so the random draw is made once and applied several times.

The parameters are size-free (shift as a fraction of the side, the warp field as fractions of the
side), so the same draw applies to an image and to a mask of another size. When both the warp and
the affine are on, they are composed into one `cv2.remap`, so the input is resampled once (DFL
resamples twice: remap, then warpAffine).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

MIN_WORK_SIZE = 64  # the warp grid is drawn at this size at least (DFL: faces < 64 px go through 64)
FLIP_PROBABILITY = 0.4
WARP_GRID_CELLS = (2, 4, 8)  # cells per side: cell size w/2, w/4 or w/8
WARP_STRENGTH = 0.24  # interior grid points move by N(0, 1) * this * cell size


@dataclass
class WarpParams:
    """One random draw of the affine, the flip and the warp field."""

    size: int  # the side (pixels) the draw was made for
    rotation: float  # degrees, counter-clockwise
    scale: float  # > 1 zooms in
    tx: float  # shift, fraction of the side
    ty: float
    flip: bool  # mirror left-right after the affine
    cells: int  # warp grid cells per side
    warp_dx: np.ndarray  # (W, W) float32: warp displacement at W = max(size, 64), fraction of the side
    warp_dy: np.ndarray

    def matrix(self, size: int | None = None) -> np.ndarray:
        """The affine (flip included) as a 2x3 matrix from input to output pixels at `size`.

        Landmarks follow the augmented target with `facelib.align.transform_points(pts, matrix)`.
        """
        s = int(size or self.size)
        c = (s - 1) / 2.0  # pixel-centre coordinates: the identity draw maps every pixel onto itself
        mat = cv2.getRotationMatrix2D((c, c), self.rotation, self.scale)
        mat[:, 2] += (self.tx * s, self.ty * s)
        if self.flip:
            mat = np.array([[-1.0, 0.0, s - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([mat, (0.0, 0.0, 1.0)])
        return mat

    def displacement(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The warp field (dx, dy) in pixels at `size` x `size`: input pixel p reads from p + d(p)."""
        dx, dy = self.warp_dx, self.warp_dy
        if dx.shape[0] != size:
            dx = cv2.resize(dx, (size, size), interpolation=cv2.INTER_LINEAR)
            dy = cv2.resize(dy, (size, size), interpolation=cv2.INTER_LINEAR)
        return dx * np.float32(size), dy * np.float32(size)


def gen_warp_params(size: int, rng: np.random.Generator, *, flip: bool,
                    rotation_range: tuple[float, float] = (-10, 10),
                    scale_range: tuple[float, float] = (-0.05, 0.05),
                    tx_range: tuple[float, float] = (-0.05, 0.05),
                    ty_range: tuple[float, float] = (-0.05, 0.05)) -> WarpParams:
    """Draw an affine, a flip (probability 0.4 when `flip`) and a warp field for `size` px images.

    The scale is drawn from [1/(1 - lo), 1 + hi], DFL's rule, so shrinking and zooming are balanced.
    """
    size = int(size)
    if size < 2:
        raise ValueError(f"warp size must be at least 2 px, got {size}")
    rotation = float(rng.uniform(*rotation_range))
    scale = float(rng.uniform(1.0 / (1.0 - scale_range[0]), 1.0 + scale_range[1]))
    tx = float(rng.uniform(*tx_range))
    ty = float(rng.uniform(*ty_range))
    do_flip = bool(flip) and bool(rng.random() < FLIP_PROBABILITY)

    work = max(size, MIN_WORK_SIZE)
    cells = int(WARP_GRID_CELLS[int(rng.integers(len(WARP_GRID_CELLS)))])
    cell = work / cells
    # Border grid points stay put, so the face outline never tears away from the image edge.
    grid = np.zeros((2, cells + 1, cells + 1), np.float32)
    grid[:, 1:-1, 1:-1] = rng.normal(size=(2, cells - 1, cells - 1)) * (WARP_STRENGTH * cell / work)
    dx, dy = (_upsample(g, work) for g in grid)
    return WarpParams(size, rotation, scale, tx, ty, do_flip, cells, dx, dy)


def warp_image(img: np.ndarray, params: WarpParams, *, warp: bool, transform: bool, border_replicate: bool,
               interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """`img` (square, any channels, any dtype cv2 takes) with the warp and/or the affine+flip applied.

    Neither: the image itself. The output has the input's shape; a mask keeps its channel axis.
    Faces use `border_replicate=True`, masks False (zeros outside).
    """
    h, w = img.shape[:2]
    if h != w:
        raise ValueError(f"warp_image needs a square image, got {w}x{h}")
    if not warp and not transform:
        return img
    border = cv2.BORDER_REPLICATE if border_replicate else cv2.BORDER_CONSTANT
    mat = params.matrix(w) if transform else np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if not warp:
        out = cv2.warpAffine(img, mat, (w, w), flags=interpolation, borderMode=border)
    else:
        # Output pixel p reads the unwarped input at q + d(q), q = mat^-1 p: one resampling for both.
        inv = cv2.invertAffineTransform(mat)
        dx, dy = params.displacement(w)
        if transform:
            dx = cv2.warpAffine(dx, mat, (w, w), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            dy = cv2.warpAffine(dy, mat, (w, w), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        xs, ys = _pixel_grid(w)
        a, b, c, d, e, f = (float(v) for v in inv.reshape(-1))
        map_x = xs * np.float32(a) + ys * np.float32(b) + (dx + np.float32(c))
        map_y = xs * np.float32(d) + ys * np.float32(e) + (dy + np.float32(f))
        out = cv2.remap(img, map_x, map_y, interpolation, borderMode=border)
    if out.ndim < img.ndim:
        out = out[..., None]
    return out


@functools.lru_cache(maxsize=16)
def _upsampler(size: int, cells: int) -> np.ndarray:
    """(size, cells + 1) bilinear weights from a grid of `cells + 1` points spanning [0, size] to the
    `size` pixel centres."""
    pos = (np.arange(size) + 0.5) * (cells / size)
    left = np.minimum(pos.astype(np.int64), cells - 1)
    up = np.zeros((size, cells + 1), np.float32)
    up[np.arange(size), left] = 1.0 - (pos - left)
    up[np.arange(size), left + 1] = pos - left
    up.setflags(write=False)
    return up


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a (cells+1)^2 grid to size x size as two small matrix products, exact in
    float32 (cv2's remap and warpAffine quantise positions to 1/32 px, which stair-steps a coarse
    field; cv2.gemm because numpy's threaded BLAS is slow on these shapes)."""
    up = _upsampler(size, grid.shape[0] - 1)
    rows = cv2.gemm(up, grid, 1.0, None, 0.0)  # (size, cells + 1)
    return cv2.gemm(rows, up, 1.0, None, 0.0, flags=cv2.GEMM_2_T)


@functools.lru_cache(maxsize=16)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys
