"""Training losses in keras.ops: DSSIM, MSE, mask blur, style moments, as DFL's SAEHD uses them.

All take NHWC float32 tensors and return one value per sample (shape (N,)), so callers weight,
mask and average them the way DFL does.
"""
from __future__ import annotations

import numpy as np
from keras import ops


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (k / k.sum()).astype(np.float32)


def _separable_filter(x, k1d: np.ndarray, padding: str):
    """Filter each channel with the outer product of `k1d` as two 1-D passes (rows, then columns)."""
    channels = x.shape[-1]
    rows = np.tile(k1d[:, None, None, None], (1, 1, channels, 1))
    cols = np.tile(k1d[None, :, None, None], (1, 1, channels, 1))
    x = ops.depthwise_conv(x, rows, strides=1, padding=padding)
    return ops.depthwise_conv(x, cols, strides=1, padding=padding)


def gaussian_blur(x, radius: float):
    """Blur each channel with a gaussian of sigma `radius` (kernel ~4 sigma wide, zero padding)."""
    size = max(3, int(4 * radius))
    size += 1 - size % 2
    return _separable_filter(x, _gaussian_1d(size, radius), "same")


def soft_mask(mask, resolution: int):
    """DFL's training mask: blurred with radius res/32, clipped to 0.5 and doubled (soft, slightly grown)."""
    return ops.clip(gaussian_blur(mask, max(1.0, resolution / 32.0)), 0.0, 0.5) * 2.0


def dssim(a, b, filter_size: int, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    """Structural dissimilarity (1 - SSIM) / 2 per sample, SSIM with a gaussian window ('valid')."""
    filter_size = max(3, int(filter_size))
    k1d = _gaussian_1d(filter_size, sigma)

    def reduce(t):
        return _separable_filter(t, k1d, "valid")

    c1, c2 = k1 ** 2, k2 ** 2
    mean_a, mean_b = reduce(a), reduce(b)
    num0 = mean_a * mean_b * 2.0
    den0 = ops.square(mean_a) + ops.square(mean_b)
    luminance = (num0 + c1) / (den0 + c1)
    num1 = reduce(a * b) * 2.0
    den1 = reduce(ops.square(a) + ops.square(b))
    cs = (num1 - num0 + c2) / (den1 - den0 + c2)
    ssim = ops.mean(luminance * cs, axis=(1, 2, 3))
    return (1.0 - ssim) / 2.0


def structure_loss(a, b, resolution: int):
    """DFL's weighting: 10*DSSIM(res/11.6) under 256 px; 5*DSSIM(res/11.6) + 5*DSSIM(res/23.2) from 256."""
    if resolution < 256:
        return 10.0 * dssim(a, b, int(resolution / 11.6))
    return 5.0 * dssim(a, b, int(resolution / 11.6)) + 5.0 * dssim(a, b, int(resolution / 23.2))


def mse(a, b):
    return ops.mean(ops.square(a - b), axis=(1, 2, 3))


def mae(a, b):
    return ops.mean(ops.abs(a - b), axis=(1, 2, 3))


def style_loss(a, b, resolution: int):
    """Mean/std moments of blurred images (DFL's style_loss with gaussian blur radius res/8)."""
    radius = max(1.0, resolution / 8.0)
    a, b = gaussian_blur(a, radius), gaussian_blur(b, radius)
    mean_a, mean_b = ops.mean(a, axis=(1, 2), keepdims=True), ops.mean(b, axis=(1, 2), keepdims=True)
    std_a = ops.sqrt(ops.mean(ops.square(a - mean_a), axis=(1, 2)) + 1e-5)
    std_b = ops.sqrt(ops.mean(ops.square(b - mean_b), axis=(1, 2)) + 1e-5)
    return ops.mean(ops.square(mean_a - mean_b), axis=(1, 2, 3)) + ops.mean(ops.square(std_a - std_b), axis=1)


def total_variation(x):
    """Mean absolute difference between neighbouring pixels, per sample."""
    dy = ops.abs(x[:, 1:, :, :] - x[:, :-1, :, :])
    dx = ops.abs(x[:, :, 1:, :] - x[:, :, :-1, :])
    return ops.mean(dy, axis=(1, 2, 3)) + ops.mean(dx, axis=(1, 2, 3))


def soft_dice(target, pred, smooth: float = 1.0):
    """1 - soft Dice overlap of a mask and a prediction in 0..1, per sample: a region-level term that
    weighs a thin occluder's pixels by the share of the mask they are, not by the share of the image."""
    inter = ops.sum(target * pred, axis=(1, 2, 3))
    total = ops.sum(target, axis=(1, 2, 3)) + ops.sum(pred, axis=(1, 2, 3))
    return 1.0 - (2.0 * inter + smooth) / (total + smooth)
