"""The one crop geometry: (68 landmarks, size, face type) -> frame-to-crop affine matrix.

Every crop in the toolkit (extract, train, merge, XSeg) comes from `align`, through
`facelib.crop.CropSpec` (its only caller), and `align` reproduces
DeepFaceLab's `get_transform_mat` (in its LandmarksProcessor) so crops match DFL facesets: a
similarity fit of the brows, nose, eyes and mouth corners to a mean face in the unit square, then
a square grown around it by a per-type padding. Maths in float64; DFL rounds through float32, so
matrices agree with DFL's to about 1e-5 relative.
"""
from __future__ import annotations

import math

import numpy as np

from facelib.face_type import FaceType

# DFL's mean face (`landmarks_2D_new`): iBUG points 17..48 and 54 in the unit square. Data, not code.
MEAN_FACE_UNIT = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454],  # 17..26 brows
    [0.490127, 0.203352], [0.490127, 0.307009], [0.490127, 0.409805], [0.490127, 0.515625],
    [0.36688, 0.587326], [0.426036, 0.609345], [0.490127, 0.628106], [0.554217, 0.609345],
    [0.613373, 0.587326],  # 27..35 nose
    [0.121737, 0.216423], [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733],
    [0.260918, 0.245099], [0.182743, 0.244077],  # 36..41 right eye (image left)
    [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758], [0.858516, 0.216423],
    [0.79751, 0.244077], [0.719335, 0.245099],  # 42..47 left eye
    [0.254149, 0.780233], [0.726104, 0.780233],  # 48, 54 mouth corners
], dtype=np.float64)
FIT_INDICES = np.r_[17:49, 54]  # which of the 68 landmarks are fitted to MEAN_FACE_UNIT

# Padding around the unit square, and whether the crop is turned upright (DFL's values).
PADDING: dict[FaceType, tuple[float, bool]] = {
    FaceType.HALF: (0.0, False),
    FaceType.MID_FULL: (0.0675, False),
    FaceType.FULL: (0.2109375, False),
    FaceType.FULL_NO_ALIGN: (0.2109375, True),
    FaceType.WHOLE_FACE: (0.40, False),
    FaceType.HEAD: (0.70, False),
    FaceType.HEAD_NO_ALIGN: (0.70, True),
}
WHOLE_FACE_UP_SHIFT = 0.07  # of the unit square's side, to take in the forehead
HEAD_UP_SHIFT = 0.50


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform (3x3 homogeneous) taking `src` points onto `dst`.

    Umeyama (1991): rotation from the SVD of the cross-covariance, with the sign fix that forbids
    reflections, scale from the singular values over the source variance.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / n)
    d = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_src = (src_c ** 2).sum() / n
    if not var_src > 0:
        raise ValueError("cannot align: the landmarks are all at one point")
    c = float(s @ d) / var_src if estimate_scale else 1.0
    out = np.eye(dim + 1)
    out[:dim, :dim] = c * rot
    out[:dim, dim] = dst_mean - c * rot @ src_mean
    return out


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix (crop -> frame for an `align` matrix)."""
    mat = np.asarray(mat, dtype=np.float64)
    a_inv = np.linalg.inv(mat[:, :2])
    return np.hstack([a_inv, -a_inv @ mat[:, 2:3]])


def transform_points(points: np.ndarray, mat: np.ndarray, invert: bool = False) -> np.ndarray:
    """Apply a 2x3 affine matrix (or its inverse) to Nx2 points, or to one (x, y) point."""
    mat = invert_affine(mat) if invert else np.asarray(mat, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    return pts @ mat[:, :2].T + mat[:, 2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of `inner` followed by `outer` (both 2x3)."""
    def as3(m: np.ndarray) -> np.ndarray:
        return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return (as3(outer) @ as3(inner))[:2]


def estimate_averaged_yaw(landmarks: np.ndarray) -> float:
    """Head turn from 2D landmarks: right minus left nose-bridge-to-jaw width, in landmark units.

    DFL's heuristic; 0 for a frontal face, positive when the face's right side (image left) is
    narrower. Used on landmarks already in the unit square, so the value is scale-free.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    left = np.mean([lm[27, 0] - lm[0, 0], lm[28, 0] - lm[1, 0], lm[29, 0] - lm[2, 0]])
    right = np.mean([lm[16, 0] - lm[27, 0], lm[15, 0] - lm[28, 0], lm[14, 0] - lm[29, 0]])
    return float(right - left)


def _affine_from_3_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    # Rows [x, y, 1] @ M.T = dst, solved exactly for the 2x3 matrix M.
    return np.linalg.solve(np.hstack([src, np.ones((3, 1))]), dst).T


def align(landmarks: np.ndarray, size: int, face_type: FaceType, scale: float = 1.0) -> np.ndarray:
    """The 2x3 matrix taking frame pixels to a `size` x `size` crop of type `face_type`.

    `scale` > 1 zooms in (the crop covers less). Landmarks are 68 iBUG points in frame pixels.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"align needs 68x2 landmarks, got {lm.shape}")
    if face_type not in PADDING:
        raise ValueError(f"face type {FaceType(face_type).long_name} has no crop")
    padding, upright = PADDING[face_type]

    to_unit = umeyama(lm[FIT_INDICES], MEAN_FACE_UNIT)[:2]
    tl, tr, br, bl, centre = transform_points(
        np.array([(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)], np.float64), to_unit, invert=True)
    diag = br - tl
    diag_len = float(np.linalg.norm(diag))
    tb_dir = diag / diag_len  # top-left -> bottom-right
    bt_dir = (tr - bl) / np.linalg.norm(tr - bl)  # bottom-left -> top-right
    half_diag = diag_len * (padding * math.sqrt(2.0) + 0.5) / scale

    up = tl - bl  # one unit-square side, pointing to the top of the face
    if face_type == FaceType.WHOLE_FACE:
        centre = centre + up * WHOLE_FACE_UP_SHIFT
    elif face_type == FaceType.HEAD:  # DFL shifts only HEAD, not HEAD_NO_ALIGN
        yaw = estimate_averaged_yaw(transform_points(lm, to_unit))
        yaw *= abs(math.tanh(yaw * 2.0))  # damp small yaws to nothing
        right = tr - tl
        centre = centre + right * (yaw / 2.0) + up * HEAD_UP_SHIFT

    if not upright:
        src = np.array([centre - tb_dir * half_diag, centre + bt_dir * half_diag, centre + tb_dir * half_diag])
    else:  # same area, axis-aligned: the face is centred but not rotated
        h = half_diag / math.sqrt(2.0)
        src = np.array([centre + (-h, -h), centre + (h, -h), centre + (h, h)])
    dst = np.array([(0, 0), (size, 0), (size, size)], np.float64)
    return _affine_from_3_points(src, dst)

