"""Drawing faces onto frames for debug images and windows (DFL's colours)."""
from __future__ import annotations

import cv2
import numpy as np

GREEN, BLUE, RED = (0, 255, 0), (255, 0, 0), (0, 0, 255)


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, colour=GREEN, hull_alpha: float = 0.25) -> None:
    """68 points with a semi-transparent hull, drawn in place."""
    pts = np.round(landmarks).astype(np.int32)
    if hull_alpha > 0:
        overlay = image.copy()
        cv2.fillConvexPoly(overlay, cv2.convexHull(pts), colour)
        cv2.addWeighted(overlay, hull_alpha, image, 1 - hull_alpha, 0, dst=image)
    radius = max(1, int(round(np.ptp(pts[:, 0]) / 150)))
    for p in pts:
        cv2.circle(image, (int(p[0]), int(p[1])), radius, colour, -1, lineType=cv2.LINE_AA)


def draw_rect(image: np.ndarray, rect, colour=BLUE, thickness: int = 2) -> None:
    l, t, r, b = rect
    cv2.rectangle(image, _pt((l, t)), _pt((r, b)), colour, thickness)


def draw_crop_square(image: np.ndarray, face_to_frame: np.ndarray, size: int, colour=RED, thickness: int = 2) -> None:
    """The aligned crop's outline in the frame, with a small triangle marking its top ("up")."""
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    pts = corners @ face_to_frame[:, :2].T + face_to_frame[:, 2]
    cv2.polylines(image, [np.round(pts).astype(np.int32)], True, colour, thickness, lineType=cv2.LINE_AA)
    tri = np.array([[size * 0.45, size * 0.02], [size * 0.55, size * 0.02], [size * 0.5, size * 0.08]])
    tri = tri @ face_to_frame[:, :2].T + face_to_frame[:, 2]
    cv2.fillConvexPoly(image, np.round(tri).astype(np.int32), colour, lineType=cv2.LINE_AA)


def draw_track_id(image: np.ndarray, rect, track_id: int | None, scale: float | None = None) -> None:
    """`track N` (`new track` for None) above a face's box, on a dark backing so it reads on any frame
    (debug images, the manual window)."""
    text = "new track" if track_id is None else f"track {track_id}"
    scale = scale or max(0.4, min(2.0, (rect[2] - rect[0]) / 160.0))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = int(max(rect[0], 0)), int(max(rect[1] - 4, h + 2))
    cv2.rectangle(image, (x, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 255), 1, cv2.LINE_AA)
