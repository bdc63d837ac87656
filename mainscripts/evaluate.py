"""`evaluate`: numbers for a merged result, so models and settings can be compared without guessing.

For a sample of merged frames with a face: identity similarity of the swapped face to the src
faceset and to the original dst face (dlib embeddings), landmark and pose agreement with the dst
face, how closely the merged face's landmarks move with the driving (dst) landmarks once each
sequence's own face shape is taken out (what a reenactment model must get right), and
frame-to-frame jitter of the aligned face region. Lines start with the metric's name; the
same figures are written to `<workspace>/evaluation.json`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from facelib.swap_metrics import crop_jitter, identity_similarity, landmark_error
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


def evaluate(workspace: str, max_frames: int = 100, src_faces: int = 30) -> dict[str, float | None]:
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
    merged_crops, dst_crops = [], []
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
    atomic_write_json(ws / "evaluation.json", report)
    return report
