"""`DetectedFace`: the one hand-over type between detection, landmarks and alignment.

A plain dataclass so that every stage (detector, landmarker, aligner, manual window) talks about a
face in the same words: a rectangle in frame pixels, 68 iBUG landmarks once they are known, and the
detector's confidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DetectedFace:
    """A face in a frame, in the frame's own pixel coordinates.

    `detector` names the detector that drew `rect`: detectors disagree on where a box sits around a
    face, and the landmark step converts each convention to the one its model was trained on.
    `rotation` is the clockwise angle (0, 90, 180, 270) by which the frame had to be turned for the
    detector to see the face upright; the landmark step turns the frame the same way, since a
    landmark model only works on upright faces.
    `keypoints` are the five points some detectors give for free (CenterFace: eye centres, nose tip,
    mouth corners, in that order, left-in-image first), in frame pixels; the landmark step uses them
    to tell which way the head is turned when it places the predictor's box.
    """

    rect: tuple[float, float, float, float]  # left, top, right, bottom
    landmarks: np.ndarray | None = None  # (68, 2) float, iBUG order; None before the landmark step
    score: float = 0.0
    detector: str = ""
    rotation: int = 0
    keypoints: np.ndarray | None = None  # (5, 2) detector's own points, see below

    @property
    def width(self) -> float:
        return self.rect[2] - self.rect[0]

    @property
    def height(self) -> float:
        return self.rect[3] - self.rect[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.rect[0] + self.rect[2]) / 2.0, (self.rect[1] + self.rect[3]) / 2.0)
