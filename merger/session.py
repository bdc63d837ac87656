"""The interactive merger's session: each frame's settings and which frames are merged, in JSON.

Saved atomically in the model folder, one per model (`<model_dir>/<name>_<Class>_merger_session.json`,
beside that model's own files) on Esc and offered at the next start, as DFL does. A session is for
one frame list: other frames, or an unreadable file, start a fresh session and the old file is
renamed aside with a warning, never silently lost. A newer model iteration keeps the settings but
marks every frame for recomputing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from core import log
from core.errors import UserError
from core.fileio import atomic_write_json, read_json_file
from merger.config import MergeConfig

MAX_SESSION_BYTES = 128 << 20  # per-frame settings of ~200k frames; bounds what a shared model folder can make us read

FORMAT_NAME = "facekit.merger_session"
FORMAT_VERSION = 1


def session_path(model_dir: str | Path, model_class: str, model_name: str) -> Path:
    """The session of the model `model_name` of class `model_class` (models.model_files.ModelFiles's
    merger_session): two models in one folder never share one."""
    return Path(model_dir) / f"{model_name}_{model_class}_merger_session.json"


def legacy_session_path(model_dir: str | Path, model_class: str) -> Path:
    """Where older versions kept one session per class: it does not say which model it is for."""
    return Path(model_dir) / f"{model_class}_merger_session.json"


@dataclass
class MergeSession:
    """Per-frame settings with inheritance: a frame without its own config uses the nearest earlier
    frame's, so settings chosen on one frame carry forward until changed."""

    path: Path
    frame_names: list[str]
    model_iteration: int
    default: MergeConfig = field(default_factory=MergeConfig)
    configs: list[MergeConfig | None] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    current: int = 0

    def __post_init__(self) -> None:
        n = len(self.frame_names)
        self.configs = (list(self.configs) + [None] * n)[:n]
        self.done = (list(self.done) + [False] * n)[:n]
        self.current = min(max(0, self.current), max(0, n - 1))

    # --- settings ---------------------------------------------------------------------------------
    def config_for(self, i: int) -> MergeConfig:
        for k in range(i, -1, -1):
            if self.configs[k] is not None:
                return self.configs[k]  # type: ignore[return-value]
        return self.default

    def set_config(self, i: int, cfg: MergeConfig) -> bool:
        """Give frame i its own config; returns True (and marks it for merging) when it changed."""
        changed = self.configs[i] != cfg
        if changed or self.configs[i] is None:
            self.configs[i] = cfg
        if changed:
            self.done[i] = False
        return changed

    def materialise(self, i: int) -> MergeConfig:
        """Visiting a frame fixes its inherited config as its own (DFL's forward inheritance)."""
        cfg = self.config_for(i)
        if self.configs[i] is None:
            self.configs[i] = cfg
        return cfg

    def mark_done(self, i: int) -> None:
        self.done[i] = True

    @property
    def remaining(self) -> list[int]:
        return [i for i, d in enumerate(self.done) if not d]

    # --- files ------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "model_iteration": int(self.model_iteration),
            "current": self.current, "default": self.default.to_dict(),
            "frames": [{"name": n, "config": None if c is None else c.to_dict(), "done": d}
                       for n, c, d in zip(self.frame_names, self.configs, self.done)],
        }

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.to_json())
        except OSError as e:
            raise UserError(f"cannot save the merger session ({e.strerror or e})", self.path) from None


def _set_aside(path: Path, why: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.{why}-{stamp}-{n}")
        n += 1
    path.rename(aside)
    return aside


def _parse(data: dict, path: Path, frame_names: list[str], iteration: int, default: MergeConfig) -> MergeSession:
    if data.get("format") != FORMAT_NAME or not isinstance(data.get("frames"), list):
        raise ValueError("not a merger session file")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise ValueError(f"written by a newer version (format {data.get('version')})")
    frames = data["frames"]
    configs = [None if f.get("config") is None else MergeConfig.from_dict(f["config"]) for f in frames]
    return MergeSession(path, [str(f["name"]) for f in frames], int(data.get("model_iteration", -1)),
                        default, configs, [bool(f.get("done")) for f in frames], int(data.get("current", 0)))


def load_session(path: str | Path, frame_names: list[str], model_iteration: int,
                 default: MergeConfig) -> MergeSession | None:
    """The saved session for these frames, or None (no session, or one that cannot be used: it is
    renamed aside with a warning). Frames whose outputs are missing are left to be merged by the
    caller (`done` is only a record of what was merged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        session = _parse(read_json_file(path, "merger session", max_bytes=MAX_SESSION_BYTES), path, frame_names,
                         model_iteration, default)
    except (UserError, ValueError, TypeError, KeyError, AttributeError) as e:
        aside = _set_aside(path, "corrupt")
        log.warning(f"{path}: the merger session cannot be read ({e}); it was renamed to {aside.name} "
                    f"and a fresh session starts")
        return None
    if session.frame_names != list(frame_names):
        aside = _set_aside(path, "other-frames")
        log.warning(f"{path}: the saved session is for other frames ({len(session.frame_names)} frames, "
                    f"these are {len(frame_names)}); it was renamed to {aside.name} and a fresh session starts")
        return None
    if session.model_iteration != model_iteration:
        log.info(f"The model changed since the session was saved (iteration {session.model_iteration} -> "
                 f"{model_iteration}): every frame will be merged again with its saved settings.")
        session.model_iteration = model_iteration
        session.done = [False] * len(session.done)
    session.default = default
    return session


def new_session(path: str | Path, frame_names: list[str], model_iteration: int, default: MergeConfig) -> MergeSession:
    return MergeSession(Path(path), list(frame_names), model_iteration, default)
