"""The merge mask of one face: pick it by mask mode, then erode/dilate and feather it, as DFL's merger does.

Everything here is in the crop's own pixels. Post-processing runs at 4x the model resolution
("subres"), as DFL does, so erode and blur values mean the same to users as in DFL.
"""
from __future__ import annotations

import cv2
import numpy as np

from facelib.crop import Crop
from facelib.masks import hull_mask

SUBRES = 4  # mask post-processing at this multiple of the model resolution
NOISE = 1.0 / 255.0  # mask values below this are zeroed (learned masks are never exactly 0)


def dst_hull(landmarks: np.ndarray, crop: Crop) -> np.ndarray:
    """The landmark hull of the dst face in `crop`'s pixels (size x size)."""
    return hull_mask((crop.size, crop.size), crop.to_face(landmarks))


def select_mask(mask_mode: str, src_mask: np.ndarray, dst_mask: np.ndarray, hull: np.ndarray | None,
                xseg_prd: np.ndarray | None = None, xseg_dst: np.ndarray | None = None) -> np.ndarray:
    """The raw mask of `mask_mode` (crop pixels, float32 0..1), noise zeroed.

    src_mask / dst_mask: the model's learned masks (src decoder = "prd", dst decoder = "dst");
    hull: the dst landmark hull, needed only for mask_mode "dst"; xseg_prd / xseg_dst: the XSeg masks of
    the predicted and the dst face (merger.xseg_masks), needed only by the XSeg modes.
    """
    def xseg(mask: np.ndarray | None, which: str) -> np.ndarray:
        if mask is None:
            raise ValueError(f"mask mode '{mask_mode}' needs the {which} mask")
        return np.asarray(mask, np.float32).reshape(src_mask.shape)

    if mask_mode == "full":
        mask = np.ones_like(src_mask, dtype=np.float32)
    elif mask_mode == "dst":
        if hull is None:
            raise ValueError("mask mode 'dst' needs the landmark hull")
        mask = hull.astype(np.float32)
    elif mask_mode == "learned-prd":
        mask = src_mask
    elif mask_mode == "learned-dst":
        mask = dst_mask
    elif mask_mode == "learned-prd*learned-dst":
        mask = src_mask * dst_mask
    elif mask_mode == "learned-prd+learned-dst":
        mask = src_mask + dst_mask
    elif mask_mode == "XSeg-prd":
        mask = xseg(xseg_prd, "XSeg-prd")
    elif mask_mode == "XSeg-dst":
        mask = xseg(xseg_dst, "XSeg-dst")
    elif mask_mode == "XSeg-prd*XSeg-dst":
        mask = xseg(xseg_prd, "XSeg-prd") * xseg(xseg_dst, "XSeg-dst")
    elif mask_mode == "learned-prd*learned-dst*XSeg-prd*XSeg-dst":
        mask = src_mask * dst_mask * xseg(xseg_prd, "XSeg-prd") * xseg(xseg_dst, "XSeg-dst")
    else:
        raise ValueError(f"unknown mask mode '{mask_mode}'")
    mask = np.clip(mask.astype(np.float32), 0.0, 1.0)
    mask[mask < NOISE] = 0.0
    return mask


def to_subres(mask: np.ndarray, resolution: int) -> np.ndarray:
    size = resolution * SUBRES
    if mask.shape[0] == size:
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_CUBIC)


def post_process(mask_sub: np.ndarray, resolution: int, erode: int, blur: int) -> np.ndarray:
    """Erode (>0) / dilate (<0) with an elliptic kernel of |erode| pixels, keep the result inside
    the predicted square inset by blur/2 (so the feather reaches zero at the square's edge), then
    gaussian-blur with a kernel of `blur` pixels (made odd). All at subres; returns 0..1."""
    pad = resolution  # room for dilation beyond the square before it is clipped back
    m = np.pad(mask_sub, pad)
    if erode > 0:
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erode, erode)))
    elif erode < 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (-erode, -erode)))
    clip = pad + blur // 2
    m[:clip, :] = 0.0
    m[-clip:, :] = 0.0
    m[:, :clip] = 0.0
    m[:, -clip:] = 0.0
    if blur > 0:
        k = blur + (1 - blur % 2)
        m = cv2.GaussianBlur(m, (k, k), 0)
    return np.clip(m[pad:-pad, pad:-pad], 0.0, 1.0)
