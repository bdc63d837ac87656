"""A stand-in for a trained model, for merger tests and the merge benchmark.

It fulfils models.predictor.FacePredictor: the "swapped" face is the dst crop mirrored left-right
with its colours shifted (redder), so a merged frame differs from the dst inside the face even after
colour transfer has undone the tint, and both
learned masks are the landmark hull of a real face in the crop. Aligned crops put every face in the
same place, so one template hull fits all frames of a test clip.

Also the data_dst and the model folder the merge tests share: `make_dst`, `standin_for`,
`fake_models` and `merge_args` (the command line of a merge).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from facelib.align import align, transform_points
from facelib.face_type import FaceType
from facelib.masks import hull_mask
from faceset.face_file import read_face_meta
from models.predictor import Prediction

TINT = np.array([0.75, 1.0, 1.35], np.float32)  # B, G, R gains: a clearly redder face


class StandInPredictor:
    def __init__(self, template_landmarks: np.ndarray, resolution: int = 64, face_type: FaceType = FaceType.WHOLE_FACE,
                 iteration: int = 1, default_mode: str = "overlay", tint: np.ndarray = TINT):
        self.resolution = resolution
        self.face_type = face_type
        self.iteration = iteration
        self.default_mode = default_mode
        self.tint = np.asarray(tint, np.float32)
        mat = align(template_landmarks, resolution, face_type)
        self.mask = hull_mask((resolution, resolution), transform_points(template_landmarks, mat))
        self.calls: list[int] = []  # batch sizes seen, so tests can check batching

    def predict(self, faces: np.ndarray) -> Prediction:
        faces = np.asarray(faces, np.float32)
        n, r = faces.shape[0], self.resolution
        assert faces.shape == (n, r, r, 3), faces.shape
        self.calls.append(n)
        masks = np.repeat(self.mask[None], n, axis=0)
        return Prediction(face=np.clip(faces[:, :, ::-1] * self.tint, 0.0, 1.0), src_mask=masks, dst_mask=masks.copy())


class StandInMasker:
    """A stand-in for a trained XSeg model (merger.xseg_masks.Masker): whatever the face, the template's
    landmark hull in its crop with the lower third cut off, so an XSeg mask mode's mask differs visibly
    from the learned one (the whole hull) there and nowhere else. `calls` keeps each call's faces."""

    def __init__(self, template_landmarks: np.ndarray, resolution: int = 48, face_type: FaceType = FaceType.WHOLE_FACE):
        self.resolution = resolution
        self.face_type = face_type
        mat = align(template_landmarks, resolution, face_type)
        self.mask = hull_mask((resolution, resolution), transform_points(template_landmarks, mat)).astype(np.float32)
        self.mask[resolution * 2 // 3:] = 0.0
        self.calls: list[np.ndarray] = []

    def masks(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        assert faces.dtype == np.uint8 and faces.ndim == 4 and faces.shape[-1] == 3, (faces.dtype, faces.shape)
        self.calls.append(faces.copy())
        n, h, w = faces.shape[:3]
        m = self.mask if (h, w) == self.mask.shape else cv2.resize(self.mask, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.repeat(m[None], n, axis=0)


def masker_for(dst: Path, resolution: int = 48, **kwargs) -> StandInMasker:
    """The stand-in XSeg model whose template is the first aligned face of `dst` (in the stand-in face
    model's crop, WHOLE_FACE, so its cut falls on the lower face of every frame)."""
    meta = read_face_meta(sorted((dst / "aligned").glob("*.jpg"))[0])
    return StandInMasker(np.asarray(meta.source_landmarks, np.float64), resolution, **kwargs)


def standin_from_aligned(aligned_file, **kwargs) -> StandInPredictor:
    """A stand-in whose mask template is the frame landmarks of one real aligned face."""
    meta = read_face_meta(aligned_file)
    assert meta is not None and meta.source_landmarks is not None
    return StandInPredictor(np.asarray(meta.source_landmarks, np.float64), **kwargs)


def make_dst(root: Path, count: int, photo: str = "obama.jpg") -> Path:
    """A data_dst folder: `count` real frames of `photo` drifting (00001.png ...) and their aligned faces."""
    from tests.facesets import extract_faces, make_frames  # the extractor: not needed by the benchmark
    extract_faces(make_frames(photo, root, count=count), root / "aligned", size=128)
    return root


def standin_for(dst: Path, resolution: int = 64, **kwargs) -> StandInPredictor:
    """The stand-in whose mask template is the first aligned face of `dst`."""
    return standin_from_aligned(sorted((dst / "aligned").glob("*.jpg"))[0], resolution=resolution, **kwargs)


def fake_models(folder: Path, *names: str) -> Path:
    """State files named as train names them (only their names matter where load_predictor is replaced);
    the last name is the most recently saved."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        p = folder / f"{name}_SAEHD_state.npz"
        p.write_bytes(b"stand-in")
        os.utime(p, (1_000_000 + k, 1_000_000 + k))
    return folder


def merge_args(dst: Path, out: Path, mask: Path, model_dir: Path, *extra: str) -> list[str]:
    """`main.py merge` of dst's frames with SAEHD models of `model_dir` into `out` and `mask`."""
    return ["merge", "--input-dir", str(dst), "--output-dir", str(out), "--output-mask-dir", str(mask),
            "--aligned-dir", str(dst / "aligned"), "--model-dir", str(model_dir), "--model", "SAEHD", *extra]
