"""A DeepFaceLab model folder, read: which models it holds, their `<name>_<Class>_data.dat` and weight files.

DFL writes every file as a pickle; a model folder may come from a stranger, so each is read through
faceset.dfl_pickle's restricted loader (plain data and numeric numpy arrays only, nothing run),
with its size bounded before it is read and each array's size checked before it is allocated.
Every problem is one UserError naming the file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from faceset.dfl_pickle import restricted_loads

MAX_DATA_BYTES = 1 << 30  # data.dat: options, loss history (~20 bytes/iteration), float32 preview batch
MAX_WEIGHT_FILE_BYTES = 2 << 30  # one network's (or the optimizer's) weights
MAX_WEIGHTS_TOTAL_BYTES = 2 << 30  # all networks of one model together
_DATA_FILE = re.compile(r"^(.+)_([A-Za-z0-9]+)_data\.dat$")
# DFL's XSeg has no model name: its files are XSeg_data.dat, XSeg_<resolution>.npy and XSeg_<resolution>_opt.npy
XSEG = "XSeg"
XSEG_RESOLUTION = 256
# SAEHD's (and Quick96's, a df model) weight files per archi type, and AMP's, (`<name>_<Class>_<net>.npy`), in the
# order DFL lists their weights.
DFL_NETS = {"df": ("encoder", "inter", "decoder_src", "decoder_dst"),
            "liae": ("encoder", "inter_AB", "inter_B", "decoder"),
            "amp": ("encoder", "inter_src", "inter_dst", "decoder")}  # DFL's AMP (one shared decoder)


@dataclass(frozen=True)
class DflModel:
    """One DFL model in a folder: files are `<name>_<cls>_...`."""

    folder: Path
    name: str
    cls: str

    @property
    def prefix(self) -> str:
        return XSEG if self.cls == XSEG else f"{self.name}_{self.cls}"

    @property
    def data_file(self) -> Path:
        return self.folder / f"{self.prefix}_data.dat"

    def weights_file(self, net: str) -> Path:
        return self.folder / f"{self.prefix}_{net}.npy"


@dataclass
class DflData:
    """What `<name>_<Class>_data.dat` holds, checked for type (values are still DFL's)."""

    iteration: int
    options: dict[str, Any]
    loss_history: list[Any]
    sample_for_preview: Any


def find_dfl_models(folder: Path) -> list[DflModel]:
    """The DFL models in `folder` (any class), most recently saved first."""
    found = []
    for p in Path(folder).iterdir():
        m = _DATA_FILE.match(p.name)
        if p.name == f"{XSEG}_data.dat" and p.is_file():
            found.append((p.stat().st_mtime, DflModel(Path(folder), XSEG, XSEG)))
        elif m and p.is_file():
            found.append((p.stat().st_mtime, DflModel(Path(folder), m[1], m[2])))
    return [model for _, model in sorted(found, key=lambda t: t[0], reverse=True)]


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{what} is too large to import ({size} bytes; at most {limit})", path)
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise UserError(f"{what} is missing (DFL writes it with the model; copy the whole model folder)", path) from None
    except IsADirectoryError:
        raise UserError(f"{what} is a folder, not a file", path) from None
    except OSError as e:
        raise UserError(f"cannot read {what} ({e.strerror or e})", path) from None
    if len(data) > limit:
        raise UserError(f"{what} is too large to import (grew while read; at most {limit} bytes)", path)
    return data


def read_dfl_data(model: DflModel) -> DflData:
    """The model's data.dat: iteration and options required, history and preview optional."""
    path = model.data_file
    obj = restricted_loads(_read_bounded(path, MAX_DATA_BYTES, "DFL model data"), path, max_payload=MAX_DATA_BYTES,
                           what="DFL model data")
    if not isinstance(obj, dict):
        raise UserError(f"DFL model data must be a dict, found {type(obj).__name__}", path)
    iteration = obj.get("iter")
    if isinstance(iteration, np.integer):
        iteration = int(iteration)
    if type(iteration) is not int or iteration < 0:
        raise UserError(f"DFL model data has no valid iteration count ('iter' is {iteration!r})", path)
    options = obj.get("options")
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise UserError("DFL model data has no options dict", path)
    history = obj.get("loss_history")
    return DflData(iteration, options, history if isinstance(history, list) else [], obj.get("sample_for_preview"))


def read_dfl_weights(path: Path, limit: int = MAX_WEIGHT_FILE_BYTES) -> dict[str, np.ndarray]:
    """One weight file: {variable name: float array}; anything else is refused naming the file."""
    obj = restricted_loads(_read_bounded(path, limit, "DFL model weights"), path, max_payload=limit,
                           what="DFL model weights")
    if not isinstance(obj, dict):
        raise UserError(f"DFL model weights must be a dict of arrays, found {type(obj).__name__}", path)
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray | np.generic) or value.dtype.kind not in "fi":
            raise UserError(f"DFL model weights hold {type(value).__name__} under {key!r}, not a numeric array", path)
        out[key] = np.asarray(value)
    return out


def total_weight_bytes(paths: list[Path]) -> int:
    """Size on disk of the weight files that exist (the missing one is reported when it is read)."""
    return sum(p.stat().st_size for p in paths if p.is_file())
