"""Every merger setting in one dataclass, with DFL's defaults, ranges and key map (reference §8.3-8.5).

The interactive window, the batch `--config merge.json` file and the saved session all use this one
type. Keys are pure functions (`apply_key(cfg, key) -> cfg`), so the key map is testable without a
window and the window only draws.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import UserError

MODES = ("original", "overlay", "hist-match", "seamless", "seamless-hist-match", "raw-rgb", "raw-predict")
MODE_KEYS = {"`": "original", "1": "overlay", "2": "hist-match", "3": "seamless", "4": "seamless-hist-match",
             "5": "raw-rgb", "6": "raw-predict"}
MASK_MODES = ("full", "dst", "learned-prd", "learned-dst", "learned-prd*learned-dst", "learned-prd+learned-dst")
COLOR_TRANSFER_MODES = ("none", "rct", "lct", "mkl", "mkl-m", "idt", "idt-m", "sot-m", "mix-m")
SHARPEN_MODES = ("none", "box", "gaussian")
HIST_MATCH_MODES = ("hist-match", "seamless-hist-match")

# Numeric settings: (min, max). DFL's ranges.
RANGES: dict[str, tuple[int, int]] = {
    "hist_match_threshold": (0, 255),
    "erode": (-400, 400),
    "blur": (0, 400),
    "motion_blur": (0, 100),
    "output_face_scale": (-50, 50),
    "sharpen_amount": (-100, 100),
    "image_denoise": (0, 500),
    "bicubic_degrade": (0, 100),
    "color_degrade": (0, 100),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "mode": MODES, "mask_mode": MASK_MODES, "color_transfer": COLOR_TRANSFER_MODES, "sharpen_mode": SHARPEN_MODES,
}


@dataclass(frozen=True)
class MergeConfig:
    """How a frame is merged. Immutable: keys return a new config, so per-frame copies never alias."""

    mode: str = "overlay"
    mask_mode: str = "learned-prd*learned-dst"
    erode: int = 0  # mask erode (>0) / dilate (<0), pixels at 4x model resolution
    blur: int = 0  # mask feather, gaussian kernel in pixels at 4x model resolution
    motion_blur: int = 0  # % of the face's motion between frames used as a blur length
    output_face_scale: int = 0  # % larger (>0) or smaller (<0) paste of the predicted face
    color_transfer: str = "rct"
    sharpen_mode: str = "none"
    sharpen_amount: int = 0  # >0 sharpen (with sharpen_mode), <0 median blur
    hist_match_threshold: int = 238
    masked_hist_match: bool = True
    image_denoise: int = 0  # median-blur the frame background to match a soft fake face
    bicubic_degrade: int = 0  # down/up-scale the frame background
    color_degrade: int = 0  # % blend with a 256-colour version of the output

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        for name, (lo, hi) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            object.__setattr__(self, name, min(hi, max(lo, value)))  # clamp into DFL's range
        if not isinstance(self.masked_hist_match, bool):
            raise ValueError(f"masked_hist_match must be true or false, got {self.masked_hist_match!r}")

    def replace(self, **changes: Any) -> MergeConfig:
        """A copy with `changes`, clamped like every config."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: MergeConfig | None = None) -> MergeConfig:
        """A config from JSON data; missing keys keep `base`'s values (defaults), unknown keys are
        an error (a typo would otherwise be ignored silently). Raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError("a merge config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = (base or cls()).to_dict()
        values.update(data)
        return cls(**values)

    def describe(self) -> str:
        """The settings as the console and the window show them, one per line, only those in effect."""
        lines = [f"Mode: {self.mode}"]
        if self.mode in HIST_MATCH_MODES:
            lines.append(f"Hist match threshold: {self.hist_match_threshold}")
        if self.mode == "hist-match":
            lines.append(f"Masked hist match: {self.masked_hist_match}")
        lines += [
            f"Mask mode: {self.mask_mode}",
            f"Erode mask: {self.erode}",
            f"Blur mask: {self.blur}",
            f"Motion blur power: {self.motion_blur}",
            f"Output face scale: {self.output_face_scale}",
            f"Color transfer: {self.color_transfer}",
            f"Sharpen mode: {self.sharpen_mode}",
            f"Blur(-)/sharpen(+) amount: {self.sharpen_amount}",
            f"Image denoise power: {self.image_denoise}",
            f"Bicubic degrade power: {self.bicubic_degrade}",
            f"Color degrade power: {self.color_degrade}",
        ]
        return "\n".join(lines)


def default_config(model_default_mode: str | None = None) -> MergeConfig:
    """DFL's interactive defaults, with the mode the model suggests."""
    if model_default_mode and model_default_mode in MODES:
        return MergeConfig(mode=model_default_mode)
    return MergeConfig()


# --- files -----------------------------------------------------------------------------------------

def load_config(path: str | Path, base: MergeConfig | None = None) -> MergeConfig:
    """Read a `--config merge.json`; a UserError names the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("merge config file not found", path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read merge config ({e})", path) from None
    except json.JSONDecodeError as e:
        raise UserError(f"merge config is not valid JSON ({e.msg} at line {e.lineno})", path) from None
    try:
        return MergeConfig.from_dict(data, base)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad merge config: {e}", path) from None


def save_config(path: str | Path, cfg: MergeConfig) -> None:
    from core.fileio import atomic_write_json
    atomic_write_json(path, cfg.to_dict())


# --- keys ------------------------------------------------------------------------------------------

# Key -> (setting, step). Shifted letters (upper case) step by 5, as in DFL.
_STEP_KEYS: dict[str, tuple[str, int]] = {
    "q": ("hist_match_threshold", 1), "a": ("hist_match_threshold", -1),
    "w": ("erode", 1), "s": ("erode", -1),
    "e": ("blur", 1), "d": ("blur", -1),
    "r": ("motion_blur", 1), "f": ("motion_blur", -1),
    "y": ("sharpen_amount", 1), "h": ("sharpen_amount", -1),
    "u": ("output_face_scale", 1), "j": ("output_face_scale", -1),
    "i": ("image_denoise", 1), "k": ("image_denoise", -1),
    "o": ("bicubic_degrade", 1), "l": ("bicubic_degrade", -1),
    "p": ("color_degrade", 1),
}
_STEP_KEYS.update({k.upper(): (name, step * 5) for k, (name, step) in list(_STEP_KEYS.items())})
_STEP_KEYS.update({";": ("color_degrade", -1), ":": ("color_degrade", -5)})

_CYCLE_KEYS = {"x": "mask_mode", "c": "color_transfer", "n": "sharpen_mode"}

# What each settings key does, for the help screen (navigation keys are the window's).
KEY_HELP: tuple[tuple[str, str], ...] = (
    ("` 1-6", "mode: original, overlay, hist-match, seamless, seamless-hist-match, raw-rgb, raw-predict"),
    ("q / a", "hist-match threshold +/- (hist-match modes)"),
    ("z", "masked hist-match on/off (hist-match mode)"),
    ("w / s", "erode (+) / dilate (-) mask"),
    ("e / d", "blur mask +/-"),
    ("r / f", "motion blur power +/-"),
    ("y / h", "sharpen (+) / blur (-) amount"),
    ("n", "sharpen mode: none, box, gaussian"),
    ("u / j", "output face scale +/-"),
    ("i / k", "image denoise power +/-"),
    ("o / l", "bicubic degrade power +/-"),
    ("p / ; / :", "colour degrade +1 (P: +5) / -1 / -5"),
    ("x", "mask mode"),
    ("c", "colour transfer mode"),
    ("Shift", "with a letter: steps of 5"),
)


def is_setting_key(key: str) -> bool:
    return key in _STEP_KEYS or key in _CYCLE_KEYS or key in MODE_KEYS or key == "z"


def apply_key(cfg: MergeConfig, key: str, default_mode: str = "overlay") -> MergeConfig:
    """The config after pressing `key` (one character as typed, e.g. 'e', 'E', ';'); other keys
    return `cfg` unchanged. Like DFL, the threshold keys act only in the hist-match modes and the
    masked toggle only in hist-match."""
    if key in MODE_KEYS:
        return cfg.replace(mode=MODE_KEYS[key] or default_mode)
    if key in _STEP_KEYS:
        name, step = _STEP_KEYS[key]
        if name == "hist_match_threshold" and cfg.mode not in HIST_MATCH_MODES:
            return cfg
        return cfg.replace(**{name: getattr(cfg, name) + step})
    if key in _CYCLE_KEYS:
        name = _CYCLE_KEYS[key]
        choices = CHOICES[name]
        return cfg.replace(**{name: choices[(choices.index(getattr(cfg, name)) + 1) % len(choices)]})
    if key == "z" and cfg.mode == "hist-match":
        return cfg.replace(masked_hist_match=not cfg.masked_hist_match)
    return cfg
