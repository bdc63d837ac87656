"""Every merger setting in one dataclass, with DFL's defaults, ranges and key map.

The interactive window, the batch `--config merge.json` file and the saved session all use this one
type. Keys are pure functions (`apply_key(cfg, key) -> cfg`), so the key map is testable without a
window and the window only draws.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fileio import read_json_file
from core.settings import Option, never, parse_dict

MODES = ("original", "overlay", "hist-match", "seamless", "seamless-hist-match", "raw-rgb", "raw-predict")
MODE_KEYS = {"`": "original", "1": "overlay", "2": "hist-match", "3": "seamless", "4": "seamless-hist-match",
             "5": "raw-rgb", "6": "raw-predict"}
MASK_MODES = ("full", "dst", "learned-prd", "learned-dst", "learned-prd*learned-dst", "learned-prd+learned-dst",
              "XSeg-prd", "XSeg-dst", "XSeg-prd*XSeg-dst", "learned-prd*learned-dst*XSeg-prd*XSeg-dst")  # DFL's order
COLOR_TRANSFER_MODES = ("none", "rct", "lct", "mkl", "mkl-m", "idt", "idt-m", "sot-m", "mix-m")
SHARPEN_MODES = ("none", "box", "gaussian")
HIST_MATCH_MODES = ("hist-match", "seamless-hist-match")
DEFAULT_MORPH = 0.75  # DeepFaceLive's default for AMP models (models.dfm_contract.DEFAULT_MORPH)
MORPH_STEP = 0.05  # per press of ] or [ (Shift: 0.25)
TEMPORAL_MAX = 15  # frames on each side: half a second at 30 fps; wider windows blur real expression changes


def _knob(key: str, default: int, lo: int, hi: int, question: str, help_text: str, **kw: Any) -> Option:
    """A numeric merger setting: a whole number kept within DFL's range (keys may step past it)."""
    return Option(key, default, help_text, question, "int", valid_range=(lo, hi), clamp=True, **kw)


# Every merger setting, declared once, in DFL's question order: type, default, range or choices, help and
# prompt. MergeConfig's fields, its JSON file, its clamping and the console questions all come from here.
MERGE_OPTIONS: tuple[Option, ...] = (
    Option("mode", "overlay", "How the predicted face is put into the frame.", "Mode", choices=MODES,
           default_text="the mode the model suggests; overlay for Quick96 and SAEHD"),  # see default_config
    _knob("hist_match_threshold", 238, 0, 255, "Hist match threshold",
          "Histogram matching threshold of the hist-match modes.", ask_if=lambda o: o.get("mode") in HIST_MATCH_MODES),
    Option("masked_hist_match", True, "Match histograms inside the face mask only (hist-match mode).",
           "Masked hist match?", "bool", ask_if=lambda o: o.get("mode") == "hist-match"),
    Option("mask_mode", "learned-prd*learned-dst", "Which mask blends the face: full square, dst hull, the "
           "model's learned masks of the predicted and/or dst face, or a trained XSeg model's masks of them "
           "(XSeg-dst uses the dst face's baked mask when it has one; see --xseg-model-dir).", "Mask mode",
           choices=MASK_MODES),
    _knob("erode", 0, -400, 400, "Choose erode mask modifier",
          "Erode (>0) or dilate (<0) the mask, pixels at 4x model resolution."),
    _knob("blur", 0, 0, 400, "Choose blur mask modifier", "Feather the mask edge, pixels at 4x model resolution."),
    _knob("motion_blur", 0, 0, 100, "Choose motion blur power",
          "Blur the face along its motion between frames, % of that motion."),
    _knob("output_face_scale", 0, -50, 50, "Choose output face scale modifier",
          "Paste the predicted face larger (>0) or smaller (<0), in %."),
    Option("color_transfer", "rct", "Colour transfer from the dst face to the predicted face.",
           "Color transfer to predicted face", choices=COLOR_TRANSFER_MODES),
    Option("sharpen_mode", "none", "Sharpening filter used by a positive sharpen amount.", "Choose sharpen mode",
           choices=SHARPEN_MODES),
    _knob("sharpen_amount", 0, -100, 100, "Choose blur/sharpen amount", "Sharpen (>0, with sharpen mode) or "
          "median-blur (<0) the face."),
    _knob("image_denoise", 0, 0, 500, "Choose image degrade by denoise power",
          "Median-blur the frame background to match a soft fake face."),
    _knob("bicubic_degrade", 0, 0, 100, "Choose image degrade by bicubic rescale power",
          "Down- and up-scale the frame background to match a soft fake face."),
    _knob("color_degrade", 0, 0, 100, "Degrade color power of final image",
          "Blend the output with a 256-colour version of itself, in %."),
    # AMP only (predictors with has_morph): 0 = the dst face, 1 = fully the src face. DFL's merger asks it with
    # 1.0; we take DeepFaceLive's 0.75: AMP trains on codes with only morph_factor (0.5) of src channels, so
    # 1.0 is an extrapolation that users of DFL's AMP often back off from, and 0.75 keeps most of the likeness.
    # Not asked on the console (it is no setting of other models): its flag, the window keys and --config.
    Option("morph_factor", DEFAULT_MORPH, "AMP models: how far the face morphs from dst (0.0) to src (1.0); other "
           "models ignore it.", "Morph factor", "float", valid_range=(0.0, 1.0), clamp=True, ask_if=never),
    # Not in DFL (its merger works frame by frame): DeepFaceLive-style stabilisation along each dst face track
    # (merger.temporal). 0 keeps DFL's per-frame merge exactly.
    _knob("temporal", 0, 0, TEMPORAL_MAX, "Temporal smoothing window (frames each side, 0 = off)",
          "Stabilise each tracked face over this many frames on each side: the paste position, the blend mask and the "
          "colour-transfer statistics (rct, lct, mkl) are averaged along the face's track, so the face neither shakes "
          "nor flickers. Faces without a track id (extract before tracks, DFL facesets) are merged per frame."),
)
BY_KEY: dict[str, Option] = {o.key: o for o in MERGE_OPTIONS}
RANGES: dict[str, tuple[int, int]] = {o.key: (int(o.valid_range[0]), int(o.valid_range[1]))
                                      for o in MERGE_OPTIONS if o.valid_range and o.kind == "int"}
CHOICES: dict[str, tuple[str, ...]] = {o.key: o.choices for o in MERGE_OPTIONS if o.choices}


def _default(key: str) -> Any:
    return BY_KEY[key].default


@dataclass(frozen=True)
class MergeConfig:
    """How a frame is merged (see MERGE_OPTIONS for each setting). Immutable: keys return a new config, so
    per-frame copies never alias. Every value goes through its declaration: numbers are clamped into DFL's
    range, anything else that does not fit is a ValueError naming the setting."""

    mode: str = _default("mode")
    mask_mode: str = _default("mask_mode")
    erode: int = _default("erode")
    blur: int = _default("blur")
    motion_blur: int = _default("motion_blur")
    output_face_scale: int = _default("output_face_scale")
    color_transfer: str = _default("color_transfer")
    sharpen_mode: str = _default("sharpen_mode")
    sharpen_amount: int = _default("sharpen_amount")
    hist_match_threshold: int = _default("hist_match_threshold")
    masked_hist_match: bool = _default("masked_hist_match")
    image_denoise: int = _default("image_denoise")
    bicubic_degrade: int = _default("bicubic_degrade")
    color_degrade: int = _default("color_degrade")
    morph_factor: float = _default("morph_factor")
    temporal: int = _default("temporal")

    def __post_init__(self) -> None:
        for opt in MERGE_OPTIONS:
            try:
                object.__setattr__(self, opt.key, opt.parse(getattr(self, opt.key)))
            except ValueError as e:
                raise ValueError(f"{opt.key} {e}") from None

    def replace(self, **changes: Any) -> MergeConfig:
        """A copy with `changes`, clamped like every config."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: MergeConfig | None = None, path: Any = None) -> MergeConfig:
        """A config from JSON data; missing keys keep `base`'s values (defaults), unknown keys are an error
        (a typo would otherwise be ignored silently). A bad value is a UserError naming `path` and the key,
        or without a `path` (a config inside a session file) a ValueError."""
        try:
            values = parse_dict(MERGE_OPTIONS, data, path, what="bad merge config: {key}", unknown="error")
        except UserError as e:
            if path is None:
                raise ValueError(e.problem) from None
            raise
        return cls(**{**(base or cls()).to_dict(), **values})

    def describe(self, morph: bool = False) -> str:
        """The settings as the console and the window show them, one per line, only those in effect (the morph
        factor with `morph`: for a model that has one)."""
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
            f"Temporal smoothing: {self.temporal} frame(s) each side" if self.temporal else "Temporal smoothing: off",
        ]
        if morph:
            lines.append(f"Morph factor: {self.morph_factor:.2f}")
        return "\n".join(lines)


def default_config(model_default_mode: str | None = None, model_mask_mode: str | None = None) -> MergeConfig:
    """DFL's interactive defaults, with the mode and the mask mode the model suggests (a model without a mask
    network, Original, suggests the dst hull: its "learned" masks are only an average face shape)."""
    changes = {}
    if model_default_mode and model_default_mode in MODES:
        changes["mode"] = model_default_mode
    if model_mask_mode and model_mask_mode in MASK_MODES:
        changes["mask_mode"] = model_mask_mode
    return MergeConfig(**changes)


# --- files -----------------------------------------------------------------------------------------

def load_config(path: str | Path, base: MergeConfig | None = None) -> MergeConfig:
    """Read a `--config merge.json`; a UserError names the file and what is wrong with it."""
    path = Path(path)
    data = read_json_file(path, "merge config", max_bytes=1 << 20)
    return MergeConfig.from_dict(data, base, path)


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
    "t": ("temporal", 1), "g": ("temporal", -1),
}
_STEP_KEYS.update({k.upper(): (name, step * 5) for k, (name, step) in list(_STEP_KEYS.items())})
_STEP_KEYS.update({";": ("color_degrade", -1), ":": ("color_degrade", -5)})

_CYCLE_KEYS = {"x": "mask_mode", "c": "color_transfer", "n": "sharpen_mode"}
# AMP's morph factor: ] / [ step it by MORPH_STEP, Shift (} / {) by five steps
MORPH_KEYS: dict[str, float] = {"]": MORPH_STEP, "[": -MORPH_STEP, "}": 5 * MORPH_STEP, "{": -5 * MORPH_STEP}

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
    ("t / g", "temporal smoothing window +/- 1 frame each side (0 = off; tracked faces)"),
    ("x", "mask mode"),
    ("c", "colour transfer mode"),
    ("] / [", "morph factor +/- 0.05 (Shift: 0.25; AMP models)"),
    ("Shift", "with a letter: steps of 5"),
)


def is_setting_key(key: str) -> bool:
    return key in _STEP_KEYS or key in _CYCLE_KEYS or key in MODE_KEYS or key in MORPH_KEYS or key == "z"


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
    if key in MORPH_KEYS:  # rounded to the step, so presses up and down meet again
        return cfg.replace(morph_factor=round(cfg.morph_factor + MORPH_KEYS[key], 2))
    if key == "z" and cfg.mode == "hist-match":
        return cfg.replace(masked_hist_match=not cfg.masked_hist_match)
    return cfg


if [f.name for f in fields(MergeConfig)] != [f.name for f in fields(MergeConfig) if f.name in BY_KEY] \
        or len(BY_KEY) != len(fields(MergeConfig)):
    raise RuntimeError("MergeConfig's fields must be exactly MERGE_OPTIONS' keys")
