"""What the 5.XSeg scripts must leave in the test workspace: a mixin of tests/test_scripts.py's Checks
(kept apart so that file stays readable). The workspace's faces are 256 px by the time these run."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceset.face_file import read_face_meta

FACE_SIZE = 256


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg"))


def _digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}


class XSegChecks:
    ws: Path
    seen: dict

    # XSeg: labels drawn from each face's own landmarks (face hull in, a box over the mouth out), as a
    # person would draw them in the editor.
    def _label(self, side: str, count: int) -> list[str]:
        from facelib.seg_polys import has_labels
        from faceset.faceset import Faceset
        faceset = Faceset.open(self.ws / side / "aligned")
        named = []
        for face in list(faceset)[:count]:
            meta = face.meta()
            lm = meta.landmarks
            hull = cv2.convexHull(lm.astype(np.float32)).reshape(-1, 2)
            (x0, y0), (x1, y1) = lm[48:60].min(axis=0) - 2, lm[48:60].max(axis=0) + 2
            mouth = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
            meta.seg_ie_polys = [{"type": 1, "pts": hull}, {"type": 0, "pts": mouth}]
            faceset.write_meta(face, meta)
            assert has_labels(read_face_meta(face.path).seg_ie_polys)
            named.append(face.name)
        return named

    def _labelled(self, folder: Path) -> list[str]:
        return sorted(p.name for p in folder.glob("*.jpg") if read_face_meta(p).seg_ie_polys)

    def _masked(self, side: str) -> list[str]:
        out = []
        for p in (self.ws / side / "aligned").glob("*.jpg"):
            meta = read_face_meta(p)
            if meta.xseg_mask is not None:
                assert meta.xseg_mask.shape == (FACE_SIZE, FACE_SIZE) and set(np.unique(meta.xseg_mask)) <= {0.0, 1.0}, p
                out.append(p.name)
        return sorted(out)

    def _before_fetch(self, side: str) -> None:
        self.seen[f"{side} labelled"] = sorted(self._label(side, 3))
        self.seen[f"{side} faces"] = _digest(self.ws / side / "aligned")
        self.seen[f"{side} names"] = _names(self.ws / side / "aligned")

    def _after_fetch(self, side: str) -> None:
        fetched = self.ws / side / "aligned_xseg"
        assert _names(fetched) == self.seen[f"{side} labelled"]
        assert _digest(fetched) == {n: self.seen[f"{side} faces"][n] for n in self.seen[f"{side} labelled"]}
        assert _digest(self.ws / side / "aligned") == self.seen[f"{side} faces"]  # originals untouched

    def _after_remove_labels(self, side: str) -> None:  # run with --yes
        assert self._labelled(self.ws / side / "aligned") == []
        assert self._labelled(self.ws / side / "aligned_xseg") == self.seen[f"{side} labelled"]  # the backup
        assert _names(self.ws / side / "aligned") == self.seen[f"{side} names"]

    def before_5_XSeg_data_dst_mask_fetch(self) -> None:
        self._before_fetch("data_dst")

    def after_5_XSeg_data_dst_mask_fetch(self) -> None:
        self._after_fetch("data_dst")

    def after_5_XSeg_data_dst_mask_remove(self) -> None:
        self._after_remove_labels("data_dst")

    def before_5_XSeg_data_src_mask_fetch(self) -> None:
        self._before_fetch("data_src")

    def after_5_XSeg_data_src_mask_fetch(self) -> None:
        self._after_fetch("data_src")

    def after_5_XSeg_data_src_mask_remove(self) -> None:
        self._after_remove_labels("data_src")

    def before_5_XSeg_train(self) -> None:  # the user labels a few faces again before training
        self._label("data_src", 2)
        self._label("data_dst", 2)

    def after_5_XSeg_train(self) -> None:
        from models.xseg import load_xseg
        assert load_xseg(self.ws / "model").resolution == 64  # the test passes --resolution 64: extra arguments reach train

    def after_5_XSeg_optional_trained_mask_data_dst_apply(self) -> None:
        assert self._masked("data_dst") == _names(self.ws / "data_dst/aligned")
        assert len(self._labelled(self.ws / "data_dst/aligned")) == 2  # labels kept

    def after_5_XSeg_optional_trained_mask_data_dst_remove(self) -> None:
        assert self._masked("data_dst") == []
        assert len(self._labelled(self.ws / "data_dst/aligned")) == 2

    def after_5_XSeg_optional_trained_mask_data_src_apply(self) -> None:
        assert self._masked("data_src") == _names(self.ws / "data_src/aligned")

    def after_5_XSeg_optional_trained_mask_data_src_remove(self) -> None:
        assert self._masked("data_src") == []

    def after_5_XSeg_generic_data_dst_whole_faceset_generic_mask(self) -> None:
        assert self._masked("data_dst") == _names(self.ws / "data_dst/aligned")
