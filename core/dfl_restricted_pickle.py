"""Read the pickled metadata dict that DeepFaceLab stores in its face files, without trusting it.

DFL facesets are shared on the internet, and a plain `pickle.loads` runs whatever code the file
names. Plain DFL metadata only needs numpy arrays, dtypes and numpy scalars besides builtin
containers, so every other global is refused before it is looked up.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError

# (module, name) as written in the pickle -> the object it stands for. Both numpy 1.x (`numpy.core`)
# and numpy 2.x (`numpy._core`) spellings map to numpy 2's objects, so the deprecated `numpy.core`
# shim is never imported. `_frombuffer` is what numpy writes for arrays under pickle protocol 5.
_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = np._core.multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = np._core.multiarray.scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = np._core.numeric._frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype
del _mod


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and scalars and refuses every other global."""

    def __init__(self, file: io.BufferedIOBase, path: str | Path | None = None):
        super().__init__(file, fix_imports=False)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UserError(
                f"refusing to load DFL metadata that asks for code outside numpy arrays (global {module}.{name})",
                self.path,
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UserError("refusing to load DFL metadata with persistent ids", self.path)


def restricted_loads(data: bytes, path: str | Path | None = None) -> Any:
    """Unpickle `data` with `RestrictedUnpickler`; any failure becomes a one-line UserError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), path).load()
    except UserError:
        raise
    except RecursionError:
        raise UserError("corrupt DFL metadata (nested too deeply)", path) from None
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean the same to the user
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"corrupt DFL metadata (pickle: {detail})", path) from None
