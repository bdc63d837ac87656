"""What a trained model hands the merger: dst faces in, swapped faces and learned masks out.

The merger knows only this contract, so any model (Quick96, SAEHD, a test stand-in) can be merged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facelib.face_type import FaceType


@dataclass
class Prediction:
    """Model outputs for a batch of N aligned dst faces at the model's resolution R."""

    face: np.ndarray  # (N, R, R, 3) float32 BGR in 0..1: the src identity on the dst face
    src_mask: np.ndarray  # (N, R, R) float32 0..1: mask predicted by the src decoder ("learned-prd")
    dst_mask: np.ndarray  # (N, R, R) float32 0..1: mask predicted by the dst decoder ("learned-dst")


class FacePredictor(Protocol):
    """A loaded model in inference mode."""

    resolution: int  # R: faces are cropped at R x R
    face_type: FaceType  # the crop the model was trained on
    iteration: int  # training iteration of the weights (a changed value invalidates merged frames)
    default_mode: str  # the merge mode the model suggests ("overlay")
    # Optional, read with getattr(predictor, name, False) by the callers (merger/pipeline.py, live):
    # has_morph: bool  -- predict() takes morph=float in 0..1 (AMP's morph factor, MergeConfig.morph_factor)
    # needs_landmarks: bool  -- predict() takes landmarks=(N, 68, 2) float32, each face's landmarks in
    #     the pixels of its R x R crop (Reenact: the driving landmarks)

    def predict(self, faces: np.ndarray, **extra) -> Prediction:
        """faces: (N, R, R, 3) float32 BGR in 0..1 cropped with facelib.align at (R, face_type);
        `extra`: morph= and/or landmarks= when the predictor says it takes them (see above)."""
        ...
