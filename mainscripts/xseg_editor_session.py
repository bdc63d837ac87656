"""The XSeg editor's session: which face is shown, what each key does, and saving a face's labels
when the user leaves it. No window here: `mainscripts/xseg_editor.py` draws and feeds it keys and
mouse events, and the tests drive it directly.

Saving follows DFL's editor: on next/previous/quit, and only when the labels changed, written
atomically into the face file (`Faceset.write_meta`), so a crash loses at most the face on screen.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from tqdm import tqdm

from core import log
from core.errors import UserError
from core.rename_journal import TRASH_SUFFIX, Move, move_files
from faceset.faceset import Face, Faceset
from faceset.meta import FaceMeta
from mainscripts.xseg_editor_state import EXCLUDE, INCLUDE, KIND_NAMES, Checker, LabelState, polygons_from_meta
from merger.xseg_masks import masks_of

WINDOW_NAME = "XSeg editor"
STEP_BIG = 5  # Shift+A / Shift+D (DFL)
STRIP = 9  # thumbnails of the neighbouring faces under the canvas (DFL's preview strip)

# One table: the help screen, the key map and the README come from it. Keys are the names
# `read_key` produces ('A' is Shift+A). OpenCV's Qt windows swallow Ctrl+letter, so DFL's
# Ctrl+Z / Ctrl+D have plain-key twins here (Ctrl+Shift+Z does arrive, as Shift then z).
KEYS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("q",), "include", "Q: new polygons include (DFL)"),
    (("w",), "exclude", "W: new polygons exclude (DFL)"),
    (("enter",), "close", "Enter / right click: close the polygon being drawn"),
    (("delete", "backspace"), "delete", "Del: delete the selected polygon"),
    (("z", "ctrl+z"), "undo", "Z: undo (also Ctrl+Z on Windows)"),
    (("Z", "y", "ctrl+y"), "redo", "Shift+Z, Y: redo (also Ctrl+Shift+Z; Ctrl+Y on Windows)"),
    (("d",), "next", "D: save, next face"),
    (("a",), "prev", "A: save, previous face"),
    (("D",), "next5", f"Shift+D / Shift+A: {STEP_BIG} faces forward / back"),
    (("A",), "prev5", ""),
    (("]", "ctrl+d"), "next_labelled", "] / [: next / previous labelled face (also Ctrl+D / Ctrl+A on Windows)"),
    (("[", "ctrl+a"), "prev_labelled", ""),
    (("1",), "scheme0", "1 2 3: line colours red / green / blue"),
    (("2",), "scheme1", ""),
    (("3",), "scheme2", ""),
    (("4",), "view_labels", "4: the labels' mask alone (again: the face)"),
    (("5",), "view_trained", "5: the trained XSeg mask alone (again: the face)"),
    (("`",), "overlay_trained", "`: overlay the trained XSeg mask on the face"),
    (("o",), "overlay_labels", "O: the labels' mask overlay on / off"),
    (("0",), "reset_view", "wheel: zoom at the cursor   middle drag: pan   0: whole face"),
    (("tab", "h", "H"), "help", "Tab / H: this help"),
    (("x",), "trash", "X: move the face to <folder>_trash (move it back to restore it), next face"),
    (("esc",), "quit", "Esc: save and quit"),
)
ACTIONS = {key: action for keys, action, _ in KEYS for key in keys}
MOUSE_HELP = ("L-click: add a point (a new polygon on empty space); on the first point: close",
              "drag a point: move it   R-click a point / Ctrl+click a point: delete it",
              "Ctrl+click an edge: insert a point   L-click a point: select its polygon",
              "hold Shift: the face moves under a fixed centre (cross) as you move the mouse; clicks land there")


class Masker(Protocol):
    resolution: int

    def masks(self, faces: np.ndarray) -> np.ndarray: ...


@dataclass
class ViewFlags:
    mode: str = "face"  # "face", "labels" (4) or "trained" (5)
    label_overlay: bool = True
    trained_overlay: bool = False
    scheme: int = 0
    show_help: bool = False


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/stem_N.ext` with the first N not taken (a face trashed twice)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = folder / name, 1
    while candidate.exists() or candidate.is_symlink():
        candidate, n = folder / f"{stem}_{n}{suffix}", n + 1
    return candidate


def open_faces(input_dir: Path) -> tuple[Faceset, list[Face], list[bool]]:
    """The faces to label and whether each is labelled already; a pack, an empty folder or a folder
    without aligned faces is a UserError (DFL: "N labeled" at start)."""
    faceset = Faceset.open(input_dir)
    faceset.require_folder("the XSeg editor")
    faces: list[Face] = []
    labelled: list[bool] = []
    loading = tqdm(faceset.with_meta(), desc="Loading faces", unit="faces", total=len(faceset), dynamic_ncols=True,
                   disable=len(faceset) < 200)
    for face, meta in loading:
        faces.append(face)
        labelled.append(any(len(p["pts"]) for p in meta.seg_ie_polys or ()))
    if not faces:
        raise UserError("no aligned faces to label here (the editor needs faces made by extract)", faceset.where)
    log.info(f"{len(faces)} faces, {sum(labelled)} labelled")
    return faceset, faces, labelled


class EditorSession:
    """The face on screen, its `LabelState`, the view flags, and navigation that saves on leaving."""

    def __init__(self, faceset: Faceset, faces: list[Face], labelled: list[bool] | None = None,
                 check: Checker | None = None, masker: Masker | None = None) -> None:
        self.faceset, self.faces = faceset, list(faces)
        self.labelled = list(labelled) if labelled is not None else [False] * len(faces)
        self.check, self.masker = check, masker
        self.flags = ViewFlags()
        self.index = -1
        self.quit = False
        self.saved = 0
        self.trashed: list[Path] = []
        self._quit_armed = False
        self._trained: dict[int, np.ndarray | None] = {}
        self.image: np.ndarray
        self.meta: FaceMeta
        self.state: LabelState
        self.open(0)

    @property
    def face(self) -> Face:
        return self.faces[self.index]

    @property
    def n(self) -> int:
        return len(self.faces)

    def open(self, index: int) -> None:
        """Show face `index` with its stored labels and a fresh undo history (DFL's editor). A face
        that cannot be read is dropped from this session with a warning naming it, and the next one
        in its place is shown (the editor goes on with the others)."""
        while True:
            try:
                image, meta = self.faces[index].load()
                break
            except UserError as e:
                log.warning(f"{e}; skipped")
                del self.faces[index], self.labelled[index]
                self._trained.clear()
                if not self.faces:
                    raise UserError("none of the faces could be opened", self.faceset.where) from None
                if index < self.index:
                    self.index -= 1
                index = min(index, len(self.faces) - 1)
        mode = self.state.mode if self.index >= 0 else INCLUDE
        self.index, self.image, self.meta = index, image, meta
        self.state = LabelState(max(image.shape[:2]), meta.seg_ie_polys, self.check)
        self.state.mode = mode

    # -- leaving and saving -----------------------------------------------------------------------
    def leave(self) -> bool:
        """Save the face on screen if its labels changed; False (and a message) when a polygon
        has a problem, so the user stays and nothing wrong is written."""
        result = self.state.leave()
        for text in result.messages:
            log.warning(f"{self.face.where}: {text}")
        if not result.ok:
            self.state.message = result.messages[0] if result.messages else "cannot leave this face"
            return False
        if result.labels is not None:
            labels = result.labels
            self.faceset.write_meta(self.face, dataclasses.replace(self.meta, seg_ie_polys=labels or None))
            self.labelled[self.index] = bool(labels)
            self.state.initial = self.state.polys = polygons_from_meta(labels)  # what the file now holds
            self.state.open = None
            self.saved += 1
            log.info(f"{self.face.name}: labels saved ({self._describe(labels)})")
        return True

    @staticmethod
    def _describe(labels: list[dict]) -> str:
        inc = sum(1 for p in labels if p["type"] == INCLUDE)
        return f"{inc} include, {len(labels) - inc} exclude" if labels else "none left"

    def go(self, index: int) -> None:
        index = min(max(0, index), self.n - 1)
        if index == self.index:
            self.state.message = "last face" if index == self.n - 1 else "first face"
            return
        if self.leave():
            self.open(index)

    def go_labelled(self, step: int) -> None:
        """Ctrl+D / Ctrl+A in DFL: the next face that carries labels, skipping the others."""
        i = self.index + step
        while 0 <= i < self.n and not self.labelled[i]:
            i += step
        if 0 <= i < self.n:
            self.go(i)
        else:
            self.state.message = f"no labelled face {'after' if step > 0 else 'before'} this one"

    def trash(self) -> None:
        """X (DFL): move the face on screen to `<folder>_trash` through the rename journal (a crash
        mid-move is finished by the next command; nothing is deleted, moving the file back restores
        it) and show the next face. Changed labels are saved first; a polygon with a problem keeps
        the face here until it is fixed or undone, so no drawing is lost unseen."""
        if not self.leave():
            return
        face, index = self.face, self.index
        folder = face.path.parent
        trash = folder.parent / f"{folder.name}{TRASH_SUFFIX}"
        try:
            trash.mkdir(exist_ok=True)
        except OSError as e:
            self.state.message = f"cannot make {trash} ({e.strerror or e})"
            return
        dst = _free_name(trash, face.path.name)
        try:
            move_files(folder, [Move(face.path, dst)], what="xseg editor trash")
        except UserError as e:
            self.state.message = f"not moved: {e.problem}"
            log.warning(str(e))
            return
        self.trashed.append(dst)
        log.info(f"{face.name}: moved to {dst} (move it back to restore it)")
        del self.faces[index], self.labelled[index]
        self._trained.clear()
        if not self.faces:
            self.quit = True
            return
        self.open(min(index, self.n - 1))
        self.state.message = f"{face.name} moved to {trash.name}"

    def strip(self, count: int = STRIP) -> list[int | None]:
        """The faces the thumbnail strip shows: `count` slots with the face on screen in the middle,
        None past either end."""
        first = self.index - count // 2
        return [i if 0 <= i < self.n else None for i in range(first, first + count)]

    def request_quit(self) -> None:
        """Esc: save and quit; when the face cannot be saved, a second Esc quits leaving it as it was."""
        if self.leave():
            self.quit = True
        elif self._quit_armed:
            log.warning(f"{self.face.where}: left unsaved (its labels on disk are unchanged)")
            self.quit = True
        else:
            self._quit_armed = True
            self.state.message += "; Esc again quits without saving this face"

    # -- keys ---------------------------------------------------------------------------------------
    def on_key(self, key: str | None) -> None:
        if key is None:
            return
        action = ACTIONS.get(key)
        if action is None:
            return
        if action != "quit":
            self._quit_armed = False
        s, f = self.state, self.flags
        if action in ("include", "exclude"):
            s.set_mode(INCLUDE if action == "include" else EXCLUDE)
        elif action == "close":
            s.close_open()
        elif action == "delete":
            s.delete_selected()
        elif action == "undo":
            s.undo()
        elif action == "redo":
            s.redo()
        elif action in ("next", "prev", "next5", "prev5"):
            step = STEP_BIG if action.endswith("5") else 1
            self.go(self.index + (step if action.startswith("next") else -step))
        elif action in ("next_labelled", "prev_labelled"):
            self.go_labelled(1 if action == "next_labelled" else -1)
        elif action.startswith("scheme"):
            f.scheme = int(action[-1])
        elif action in ("view_labels", "view_trained"):
            mode = action[len("view_"):]
            f.mode = "face" if f.mode == mode else mode
            if mode == "trained" and f.mode == mode and self.trained_mask() is None:
                f.mode = "face"
                s.message = self.no_trained_reason()
        elif action == "overlay_trained":
            f.trained_overlay = not f.trained_overlay
            if f.trained_overlay and self.trained_mask() is None:
                f.trained_overlay = False
                s.message = self.no_trained_reason()
        elif action == "overlay_labels":
            f.label_overlay = not f.label_overlay
        elif action == "help":
            f.show_help = not f.show_help
        elif action == "trash":
            self.trash()
        elif action == "quit":
            self.request_quit()

    # -- masks --------------------------------------------------------------------------------------
    def trained_mask(self) -> np.ndarray | None:
        """The trained XSeg mask of the face on screen: the --model-dir model's prediction, else the
        mask baked into the face by `xseg apply`; None when there is neither. Kept per face."""
        if self.index not in self._trained:
            mask = None
            if self.masker is not None:
                mask = masks_of(self.masker, self.image[None], [self.meta.landmarks])[0]
            elif self.meta.xseg_mask is not None:
                h, w = self.image.shape[:2]
                mask = self.meta.xseg_mask
                if mask.shape != (h, w):
                    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
            if len(self._trained) > 16:
                self._trained.clear()
            self._trained[self.index] = None if mask is None else np.clip(mask, 0.0, 1.0).astype(np.float32)
        return self._trained[self.index]

    def no_trained_reason(self) -> str:
        return "no trained mask: this face has none baked in (xseg apply) and no --model-dir was given"

    def title(self) -> str:
        """The window title: where the user is and the label counts (the window tests wait on it)."""
        s = self.state
        drawing = f" drawing {len(s.polys[s.open].pts)}" if s.open is not None else ""
        return (f"{WINDOW_NAME} - {self.index + 1}/{self.n} {self.face.name} - {KIND_NAMES[s.mode]} - "
                f"polygons {len(s.polys)} points {s.n_points}{drawing}{' *' if s.changed else ''} - "
                f"{sum(self.labelled)} labelled{' - help' if self.flags.show_help else ''}")
