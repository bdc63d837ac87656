"""`evaluate`: numbers for a merged result, so models and settings can be compared without guessing.

For a sample of merged frames with a face: identity similarity of the swapped face to the src
faceset and to the original dst face (dlib embeddings), landmark and pose agreement with the dst
face, how closely the merged face's landmarks move with the driving (dst) landmarks once each
sequence's own face shape is taken out (what a reenactment model must get right), and
frame-to-frame jitter of the aligned face region, the high-pass jitter of the merged face's landmarks next to
the dst's own, and the flicker of the merged mask's edge (the temporal merge's figures: `merge --temporal`).
Other merged folders (`compare`, e.g. the same merge with temporal off) get the temporal figures too, side
by side. Lines start with the metric's name; the same figures are written to `<workspace>/evaluation.json`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from core import log
from core.errors import UserError
from core.fileio import atomic_write_json, require_dir
from core.image_io import read_image
from facelib.crop import CropSpec, landmarks_to_rect
from facelib.face_type import FaceType
from facelib.identity import embedding
from facelib.landmarks import landmarks_from_box
from facelib.pose import estimate_pose
from facelib.reenact_geometry import expression_error
from facelib.swap_metrics import (
    crop_jitter,
    frame_motion,
    identity_similarity,
    landmark_error,
    landmark_jitter,
    mask_edge_flicker,
)
from faceset.faceset import Faceset

JITTER_CROP = 128


@dataclass
class FrameFace:
    frame: str
    landmarks: np.ndarray  # dst face landmarks in frame pixels (from extraction)


def _dst_faces(aligned_dir: Path) -> list[FrameFace]:
    """One face per dst frame (the first extracted), in frame order; the folder may be packed."""
    faces: dict[str, FrameFace] = {}
    for face in Faceset.open(aligned_dir):
        meta = face.meta() if face.is_jpeg else None
        if meta is None or meta.source_landmarks is None or not meta.source_filename:
            continue
        faces.setdefault(meta.source_filename, FrameFace(meta.source_filename, meta.source_landmarks))
    return [faces[k] for k in sorted(faces)]


def _src_embeddings(src_aligned: Path, count: int) -> np.ndarray:
    faces = [f for f in Faceset.open(src_aligned) if f.is_jpeg]
    if not faces:
        raise UserError("no aligned src faces to compare identities with", src_aligned)
    picks = [faces[i] for i in np.linspace(0, len(faces) - 1, min(count, len(faces))).astype(int)]
    embs = []
    for face in picks:
        image, meta = face.load()
        embs.append(embedding(image, meta.landmarks))
    return np.asarray(embs)


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a figure that cannot be measured (one frame) is null."""
    return float(value) if np.isfinite(value) else None


def mask_dir_of(merged_dir: Path) -> Path:
    """Where merge writes a merged folder's masks: `merged` -> `merged_mask` (any `X` -> `X_mask`)."""
    return merged_dir.parent / f"{merged_dir.name}_mask"


def _read_mask(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # our own merge output (a PNG merge wrote)


def temporal_figures(merged_dir: Path, faces: list[FrameFace], originals: list[np.ndarray],
                     motions: list[np.ndarray | None]) -> dict[str, float | None]:
    """The temporal merge's figures of one merged folder: landmark jitter of the merged face (the
    landmarker on the merged frames, boxed by the dst landmarks) and mask-edge flicker of its masks (moved by
    the dst's own motion); None where the folder lacks frames or masks."""
    found, masks = [], []
    for face, original in zip(faces, originals):
        path = merged_dir / (Path(face.frame).stem + ".png")
        if not path.is_file():
            return {"landmark_jitter": None, "mask_edge_flicker": None}
        merged = read_image(path)
        if merged.shape != original.shape:
            raise UserError(f"merged frame is {merged.shape[1]}x{merged.shape[0]}, its dst frame "
                            f"{original.shape[1]}x{original.shape[0]}", path)
        found.append(landmarks_from_box(merged, landmarks_to_rect(face.landmarks)))
        masks.append(_read_mask(mask_dir_of(merged_dir) / path.name))
    flicker = None
    if all(m is not None and m.shape == originals[0].shape[:2] for m in masks):
        flicker = _finite_or_none(mask_edge_flicker(masks, motions))  # type: ignore[arg-type]
    return {"landmark_jitter": _finite_or_none(landmark_jitter(np.asarray(found))), "mask_edge_flicker": flicker}


def dst_motions(faces: list[FrameFace], originals: list[np.ndarray]) -> list[np.ndarray | None]:
    """The dst face's own motion from each frame to the next (KLT on the dst frames; None at frame 0 and
    where the frames are not neighbours in the sequence)."""
    gray = [cv2.cvtColor(o, cv2.COLOR_BGR2GRAY) for o in originals]
    return [None] + [frame_motion(gray[t - 1], gray[t], landmarks_to_rect(faces[t - 1].landmarks))
                     for t in range(1, len(gray))]


def evaluate(workspace: str, max_frames: int = 100, src_faces: int = 30,
             compare: Sequence[str | Path] = ()) -> dict:
    """Score `<workspace>/data_dst/merged` (see the module docstring); `compare`: other merged folders
    (their masks in `<folder>_mask`) whose temporal figures are reported beside."""
    ws = require_dir(workspace, "workspace")
    merged_dir = require_dir(ws / "data_dst" / "merged", "merged frames folder (run merge first)")
    aligned = require_dir(ws / "data_dst" / "aligned", "dst aligned faces folder")
    src_aligned = require_dir(ws / "data_src" / "aligned", "src aligned faces folder")
    faces = [f for f in _dst_faces(aligned) if (merged_dir / (Path(f.frame).stem + ".png")).exists()]
    if not faces:
        raise UserError("no merged frame has a dst face with landmarks to compare", merged_dir)
    consecutive = faces[: max_frames]  # jitter needs neighbouring frames: take a contiguous run
    log.info(f"Evaluating {len(consecutive)} merged frames of {merged_dir} against {ws / 'data_dst'}")

    src_embs = _src_embeddings(src_aligned, src_faces)
    src_centre = src_embs.mean(axis=0, keepdims=True)
    merged_embs, dst_embs, lm_err, lm_base, yaw_d, pitch_d = [], [], [], [], [], []
    merged_crops, dst_crops, originals, dst_found = [], [], [], []
    merged_in_crop, driving_in_crop = [], []  # landmarks in each frame's aligned crop: head motion taken out
    for face in consecutive:
        original = read_image(ws / "data_dst" / face.frame)
        merged = read_image(merged_dir / (Path(face.frame).stem + ".png"))
        if merged.shape != original.shape:
            raise UserError(f"merged frame is {merged.shape[1]}x{merged.shape[0]}, its dst frame "
                            f"{original.shape[1]}x{original.shape[0]}", merged_dir / face.frame)
        merged_embs.append(embedding(merged, face.landmarks))
        dst_embs.append(embedding(original, face.landmarks))
        box = landmarks_to_rect(face.landmarks)
        lm_merged, lm_dst = landmarks_from_box(merged, box), landmarks_from_box(original, box)
        originals.append(original)
        dst_found.append(lm_dst)
        lm_err.append(landmark_error(lm_merged, lm_dst))
        lm_base.append(landmark_error(lm_dst, face.landmarks))
        (p_m, y_m, _), (p_d, y_d, _) = estimate_pose(lm_merged), estimate_pose(lm_dst)
        yaw_d.append(abs(np.degrees(y_m - y_d)))
        pitch_d.append(abs(np.degrees(p_m - p_d)))
        crop = CropSpec(JITTER_CROP, FaceType.FULL).of(face.landmarks)
        merged_crops.append(crop.warp(merged))
        merged_in_crop.append(crop.to_face(lm_merged))
        driving_in_crop.append(crop.to_face(face.landmarks))
        dst_crops.append(crop.warp(original))

    merged_embs, dst_embs = np.asarray(merged_embs), np.asarray(dst_embs)
    report = {
        "frames": len(consecutive),
        "identity_similarity_to_src": identity_similarity(merged_embs, src_centre),
        "dst_identity_similarity_to_src": identity_similarity(dst_embs, src_centre),
        "identity_similarity_to_dst": identity_similarity(merged_embs, dst_embs),
        "landmark_error": float(np.mean(lm_err)),
        "landmark_error_baseline": float(np.mean(lm_base)),
        "yaw_difference_deg": float(np.mean(yaw_d)),
        "pitch_difference_deg": float(np.mean(pitch_d)),
        "expression_error": _finite_or_none(expression_error(np.asarray(merged_in_crop), np.asarray(driving_in_crop))),
        "face_jitter": crop_jitter(merged_crops),
        "dst_face_jitter": crop_jitter(dst_crops),
    }
    motions = dst_motions(consecutive, originals)
    ours = temporal_figures(merged_dir, consecutive, originals, motions)
    report.update({"landmark_jitter": ours["landmark_jitter"],
                   "dst_landmark_jitter": _finite_or_none(landmark_jitter(np.asarray(dst_found))),
                   "mask_edge_flicker": ours["mask_edge_flicker"]})
    compared = {}
    for folder in compare:
        folder = require_dir(folder, "merged frames folder to compare")
        compared[folder.name if folder.name not in compared else str(folder)] = \
            temporal_figures(folder, consecutive, originals, motions)
    if compared:
        report["compared"] = compared
    r = report
    print(f"identity similarity to src: {r['identity_similarity_to_src']:.3f} (the dst face before the swap: "
          f"{r['dst_identity_similarity_to_src']:.3f}; higher = more like src, above 0.4 = same person)")
    print(f"identity similarity to dst: {r['identity_similarity_to_dst']:.3f} (1 = unchanged dst face)")
    print(f"landmark error vs dst: {100 * r['landmark_error']:.1f}% of the eye distance "
          f"(landmarker noise on the dst itself: {100 * r['landmark_error_baseline']:.1f}%)")
    print(f"pose difference vs dst: yaw {r['yaw_difference_deg']:.1f} deg, pitch {r['pitch_difference_deg']:.1f} deg")
    if r["expression_error"] is not None:  # needs two frames or more
        print(f"expression error vs driving landmarks: {100 * r['expression_error']:.1f}% of the eye distance "
              f"(landmark motion of the merged face against the dst's, each face's own shape taken out)")
    print(f"face jitter: {r['face_jitter']:.2f} levels per frame (dst: {r['dst_face_jitter']:.2f}; "
          f"mean change of the aligned face between consecutive frames)")
    _print_temporal(merged_dir.name, ours, r["dst_landmark_jitter"])
    for name, figures in compared.items():
        _print_temporal(name, figures, r["dst_landmark_jitter"])
    atomic_write_json(ws / "evaluation.json", report)
    return report


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _print_temporal(name: str, figures: dict[str, float | None], dst_jitter: float | None) -> None:
    """Two lines per merged folder: `landmark jitter [name]: ...` and `mask edge flicker [name]: ...`."""
    print(f"landmark jitter [{name}]: {_percent(figures['landmark_jitter'])} of the eye distance (dst: "
          f"{_percent(dst_jitter)}; high-pass shake of the merged face's landmarks, smooth motion removed)")
    print(f"mask edge flicker [{name}]: {_percent(figures['mask_edge_flicker'])} (mean change of the merged mask "
          f"near its edge between frames, the dst's own motion compensated)")
