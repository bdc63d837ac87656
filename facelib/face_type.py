"""Face types: how much of the head an aligned crop covers.

The values and names are DeepFaceLab's, so facesets, model options (`h, mf, f, wf, head`) and
users' habits carry over; the ordering means "covers more" for the aligned types.
"""
from __future__ import annotations

from enum import IntEnum

from core.errors import UserError


class FaceType(IntEnum):
    HALF = 0
    MID_FULL = 1
    FULL = 2
    FULL_NO_ALIGN = 3
    WHOLE_FACE = 4
    HEAD = 10
    HEAD_NO_ALIGN = 20
    MARK_ONLY = 100  # no crop: the whole frame keeps only the landmarks

    @property
    def long_name(self) -> str:
        """The name stored in face files (`whole_face`, …)."""
        return _LONG[self]

    @property
    def short_name(self) -> str | None:
        """The model-option code (`wf`, …), or None for types a model cannot be trained on."""
        return _SHORT.get(self)

    def __str__(self) -> str:
        return self.long_name

    @classmethod
    def from_string(cls, text: str) -> FaceType:
        """Parse a long name (`full_face`) or a short code (`f`); case and spaces are ignored."""
        key = str(text).strip().lower()
        found = _BY_NAME.get(key)
        if found is None:
            choices = ", ".join(list(_LONG.values()) + list(_SHORT.values()))
            raise UserError(f"unknown face type '{text}' (choose from {choices})")
        return found


_LONG = {
    FaceType.HALF: "half_face",
    FaceType.MID_FULL: "midfull_face",
    FaceType.FULL: "full_face",
    FaceType.FULL_NO_ALIGN: "full_face_no_align",
    FaceType.WHOLE_FACE: "whole_face",
    FaceType.HEAD: "head",
    FaceType.HEAD_NO_ALIGN: "head_no_align",
    FaceType.MARK_ONLY: "mark_only",
}
_SHORT = {
    FaceType.HALF: "h",
    FaceType.MID_FULL: "mf",
    FaceType.FULL: "f",
    FaceType.WHOLE_FACE: "wf",
    FaceType.HEAD: "head",
}
_BY_NAME = {**{v: k for k, v in _LONG.items()}, **{v: k for k, v in _SHORT.items()}}
SHORT_NAMES: tuple[str, ...] = tuple(_SHORT.values())  # h, mf, f, wf, head: the codes models and prompts offer
