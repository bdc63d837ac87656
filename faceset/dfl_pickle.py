"""DeepFaceLab's pickled face metadata: a bounded, restricted reader and a plain-data writer.

DFL facesets are shared on the internet, and a plain `pickle.loads` runs whatever code the file
names. Plain DFL metadata only needs numpy arrays, dtypes and numpy scalars besides builtin
containers, so every other global is refused before it is looked up, and the numpy callables that
are allowed are wrapped to accept only plain numeric arrays of a bounded size (a tiny pickle could
otherwise ask `_reconstruct` for a 300 MB array). The stream is read by the pure-Python unpickler so
that BUILD (set state) is allowed only on a dtype or an array, with the exact state numpy writes.
What comes out is then walked once, bounded in depth (a 3 KB pickle can nest 500 lists, which blows
the recursion limit of whatever walks it next) and in total size counting shared objects each time
they appear (a list of 1000 references to one list of 1000 values is a million values), and checked
to be plain data only. Every refusal or failure is one UserError naming the file.

DFL's `faceset.pak` pickles its sample configs with two IntEnum members in each (`SampleType`,
`FaceType`), which pickle rebuilds as `Class(n)`. A caller may name such classes in `int_enums`: each
then stands for a function that accepts one small int and returns it, plain; nothing else about
them is callable, and without `int_enums` (face metadata) every global outside numpy stays refused.

`dfl_dumps` writes a dict of plain data and numpy arrays the way DFL's own pickle looks (protocol 3,
numpy arrays through `numpy.core.multiarray._reconstruct`), so that DFL (Python 3.6, numpy 1.x) can
load faces this toolkit rewrote. It is hand-written so that it can emit numpy 1.x's module names and
nothing but the opcodes listed there.
"""
from __future__ import annotations

import contextvars
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from core.errors import UserError

MAX_PAYLOAD = 1 << 20  # bytes of pickle; DFL's whole dict fits one 64 KB JPEG segment
MAX_DEPTH = 32  # DFL's dict nests 5 deep (dict > seg_ie_polys > polys > poly > pts)
MAX_ITEMS = 250_000  # values and containers, a shared one counted each time it appears
MAX_BYTES = 8 << 20  # array data, bytes and text, counted the same way
_MAX_NDIM = 8
_MAX_ENUM = 1 << 16  # DFL's enum values are 0..100
_PLAIN_KINDS = "biuf"  # bool, int, uint, float: all DFL's metadata holds


class _Refused(Exception):
    """Raised inside the loader; restricted_loads turns it into a UserError naming the file."""


def _plain_dtype(d: Any) -> np.dtype:
    if not isinstance(d, np.dtype):
        raise _Refused(f"expected a numpy dtype, got {type(d).__name__}")
    if d.kind not in _PLAIN_KINDS or d.fields is not None or d.subdtype is not None or d.hasobject \
            or d.itemsize > 8 or d.metadata:
        raise _Refused(f"not plain data (numpy dtype {d})")
    return d


def _dtype_code(code: Any) -> np.dtype:
    if isinstance(code, bytes):
        code = code.decode("ascii", "replace")
    if not isinstance(code, str) or not 1 <= len(code) <= 4:
        raise _Refused(f"not plain data (numpy dtype code {code!r})")
    return _plain_dtype(np.dtype(code))


# [largest array, bytes `_reconstruct` may still allocate] for the load in progress: an array's data
# is part of the pickle, so neither can exceed the pickle's size (or MAX_PAYLOAD for a small one); a
# numpy-written array reconstructs at shape (0,) and gets its data from the stream.
_ARRAY_BUDGET: contextvars.ContextVar[list[int]] = contextvars.ContextVar("_ARRAY_BUDGET")


def _shape(shape: Any, dtype: np.dtype) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM \
            or not all(type(n) is int and n >= 0 for n in shape):
        raise _Refused(f"not plain data (array shape {shape!r})")
    limit = _ARRAY_BUDGET.get([MAX_PAYLOAD])[0]
    n = dtype.itemsize
    for dim in shape:
        n *= dim
        if n > limit:
            raise _Refused(f"too large (an array of shape {shape}; the whole data is at most {limit} bytes)")
    return shape


class _NdarrayRef:
    """Stands for `numpy.ndarray` in a pickle: only `_reconstruct` may use it (calling it is refused)."""


_NDARRAY = _NdarrayRef()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise _Refused("not plain data (_reconstruct of something other than numpy.ndarray)")
    dt = _plain_dtype(dtype) if isinstance(dtype, np.dtype) else _dtype_code(dtype)
    shape = _shape(shape, dt)
    budget = _ARRAY_BUDGET.get(None)
    if budget is not None:  # many arrays declared empty-handed must not add up past the pickle's size
        budget[1] -= dt.itemsize * math.prod(shape)
        if budget[1] < 0:
            raise _Refused(f"too large (arrays declared past the {budget[0]} bytes of the data)")
    return np._core.multiarray._reconstruct(np.ndarray, shape, dt)


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if type(align) not in (bool, int) or type(copy) not in (bool, int) or align not in (0, 1) or copy not in (0, 1):
        raise _Refused("not plain data (numpy dtype arguments)")
    dt = _dtype_code(obj)
    return np.dtype(dt, bool(align), True) if copy else dt


def _scalar(dtype: Any, obj: Any = None) -> Any:
    dt = _plain_dtype(dtype)
    if not isinstance(obj, bytes) or len(obj) != dt.itemsize:
        raise _Refused("not plain data (numpy scalar without its bytes)")
    return np._core.multiarray.scalar(dt, obj)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    dt = _plain_dtype(dtype)
    shape = _shape(shape, dt)
    if not isinstance(buf, (bytes, bytearray)) or order not in ("C", "F") \
            or len(buf) != dt.itemsize * math.prod(shape):
        raise _Refused("not plain data (numpy buffer)")
    return np._core.numeric._frombuffer(buf, dt, shape, order)


# (module, name) as written in the pickle -> what it stands for. Both numpy 1.x (`numpy.core`) and
# numpy 2.x (`numpy._core`) spellings are read; the deprecated `numpy.core` shim is never imported.
# `_frombuffer` is what numpy writes for arrays under pickle protocol 5.
_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    _ALLOWED[(_mod, "scalar")] = _scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _frombuffer
_ALLOWED[("numpy", "ndarray")] = _NDARRAY
_ALLOWED[("numpy", "dtype")] = _dtype
del _mod


class _IntEnumStandIn:
    """Stands for an IntEnum class named in `int_enums`: `Class(n)`, how pickle rebuilds a member,
    gives the plain int n; any other call is refused, and the class itself is not plain data."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        if kwargs or len(args) != 1 or type(args[0]) is not int or not 0 <= args[0] < _MAX_ENUM:
            raise _Refused(f"not plain data ({self.name} called with other arguments than one small int)")
        return args[0]


def _build(self: "RestrictedUnpickler") -> None:
    """BUILD: only a dtype's or an array's state, exactly as numpy writes it."""
    state = self.stack.pop()
    inst = self.stack[-1]
    if isinstance(inst, np.dtype):
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2:] == (None, None, None, -1, -1, 0)):
            raise _Refused("not plain data (numpy dtype state)")
        inst.__setstate__(state)
        _plain_dtype(inst)
        return
    if type(inst) is np.ndarray:
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise _Refused("not plain data (numpy array state)")
        shape, dt, fortran, raw = state
        dt = _plain_dtype(dt)
        if not isinstance(fortran, bool) or not isinstance(raw, (bytes, bytearray)) \
                or len(raw) != dt.itemsize * math.prod(_shape(shape, dt)):
            raise _Refused("not plain data (numpy array state)")
        inst.__setstate__((1, shape, dt, fortran, raw))
        return
    raise _Refused(f"not plain data (sets the state of a {type(inst).__name__})")


def _refuse_opcode(self: "RestrictedUnpickler") -> None:
    raise _Refused("not plain data (builds objects by calling classes)")


class RestrictedUnpickler(pickle._Unpickler):
    """A pure-Python unpickler that rebuilds plain numeric numpy arrays and scalars (and, for the
    `int_enums` named, IntEnum members as plain ints), refuses every other global, and sets state
    only on dtypes and arrays."""

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _build
    for _op in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse_opcode
    del _op

    def __init__(self, file: io.BufferedIOBase, path: str | Path | None = None,
                 int_enums: Iterable[tuple[str, str]] = (), what: str = "DFL metadata"):
        super().__init__(file, fix_imports=False)
        self.path = path
        self.int_enums = frozenset(int_enums)
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            pass
        if (module, name) in self.int_enums:
            return _IntEnumStandIn(f"{module}.{name}")
        raise UserError(f"refusing to load {self.what} that asks for code outside numpy arrays "
                        f"(global {module}.{name})", self.path)

    def persistent_load(self, pid: Any) -> Any:
        raise UserError(f"refusing to load {self.what} with persistent ids", self.path)


def _check_plain(root: Any, max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES) -> None:
    """Walk what was loaded once: depth, total size and types bounded (see the module docstring)."""
    items = nbytes = 0
    stack = [(root, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Refused(f"nested too deeply (more than {MAX_DEPTH} levels)")
        items += 1
        if items > max_items:
            raise _Refused(f"too large (more than {max_items} values, counting repeats)")
        t = type(obj)
        if obj is None or t is bool or t is float:
            continue
        if t is int:
            if obj.bit_length() > 64:
                raise _Refused("not plain data (an integer past 64 bits)")
            continue
        if t is str or t is bytes or t is bytearray or t is np.ndarray:
            if t is np.ndarray:
                _plain_dtype(obj.dtype)
            nbytes += obj.nbytes if t is np.ndarray else len(obj)
            if nbytes > max_bytes:
                raise _Refused(f"too large (more than {max_bytes} bytes of arrays and text, counting repeats)")
            continue
        if isinstance(obj, np.generic):
            _plain_dtype(obj.dtype)
            continue
        if t is list or t is tuple:
            stack.extend((x, depth + 1) for x in obj)
            continue
        if t is dict:
            for k, v in obj.items():
                if type(k) not in (str, int):
                    raise _Refused(f"not plain data (a {type(k).__name__} as a key)")
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
            continue
        if t is _IntEnumStandIn:
            raise _Refused(f"not plain data (the class {obj.name} itself, not one of its members)")
        raise _Refused(f"not plain data ({t.__name__})")


def restricted_loads(data: bytes, path: str | Path | None = None, *, int_enums: Iterable[tuple[str, str]] = (),
                     max_payload: int = MAX_PAYLOAD, what: str = "DFL metadata") -> Any:
    """Unpickle `data` with `RestrictedUnpickler` and check it is bounded plain data; any refusal or
    failure (RecursionError and MemoryError included) becomes a one-line UserError naming `path`.

    `int_enums`: (module, class) pairs of IntEnums whose members load as plain ints (DFL's pack).
    `max_payload` past the default (a face's metadata) raises the value and byte bounds by the size
    of `data`: a value that is not a repeat costs at least one byte of pickle, so the raised bounds
    still stop a stream that grows by repetition, and one array (and all arrays `_reconstruct` is
    asked to allocate) may be as large as `data`, checked before anything is allocated (DFL's weight
    files). `what` names the data in messages.
    """
    if len(data) > max_payload:
        raise UserError(f"refusing to load {what}: too large ({len(data)} bytes; at most {max_payload})", path)
    extra = len(data) if max_payload > MAX_PAYLOAD else 0
    largest = max(MAX_PAYLOAD, len(data)) if extra else MAX_PAYLOAD
    token = _ARRAY_BUDGET.set([largest, largest])
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), path, int_enums, what).load()
        _check_plain(obj, MAX_ITEMS + extra, MAX_BYTES + extra)
        return obj
    except UserError:
        raise
    except _Refused as e:
        raise UserError(f"refusing to load {what}: {e}", path) from None
    except RecursionError:
        raise UserError(f"refusing to load {what}: nested too deeply", path) from None
    except MemoryError:
        raise UserError(f"refusing to load {what}: too large to load (out of memory)", path) from None
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean the same to the user
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"corrupt {what} (pickle: {detail})", path) from None
    finally:
        _ARRAY_BUDGET.reset(token)


# ---- writing: DFL's pickle from plain data ----------------------------------------------------

_G_RECONSTRUCT = pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n"
_G_NDARRAY = pickle.GLOBAL + b"numpy\nndarray\n"
_G_DTYPE = pickle.GLOBAL + b"numpy\ndtype\n"


def dfl_dumps(obj: Any) -> bytes:
    """`obj` (dict/list/tuple/str/bytes/int/float/bool/None and plain numeric numpy arrays and
    scalars) as a protocol-3 pickle that DFL's `pickle.loads` (numpy 1.x) and `restricted_loads` read."""
    out = bytearray(pickle.PROTO + b"\x03")
    _dump(obj, out, 0)
    out += pickle.STOP
    return bytes(out)


def _dump(obj: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("DFL metadata nested too deeply to write")
    t = type(obj)
    if obj is None:
        out += pickle.NONE
    elif t is bool:
        out += pickle.NEWTRUE if obj else pickle.NEWFALSE
    elif t is int:
        if 0 <= obj < 256:
            out += pickle.BININT1 + bytes([obj])
        elif -(1 << 31) <= obj < (1 << 31):
            out += pickle.BININT + struct.pack("<i", obj)
        else:
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            if len(raw) > 255:
                raise ValueError("integer too large for DFL metadata")
            out += pickle.LONG1 + bytes([len(raw)]) + raw
    elif t is float:
        out += pickle.BINFLOAT + struct.pack(">d", obj)
    elif t is str:
        raw = obj.encode("utf-8", "surrogatepass")
        out += pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw
    elif t is bytes:
        out += (pickle.SHORT_BINBYTES + bytes([len(obj)]) if len(obj) < 256
                else pickle.BINBYTES + struct.pack("<I", len(obj))) + obj
    elif t is list:
        out += pickle.EMPTY_LIST
        if obj:
            out += pickle.MARK
            for x in obj:
                _dump(x, out, depth + 1)
            out += pickle.APPENDS
    elif t is tuple:
        out += pickle.MARK
        for x in obj:
            _dump(x, out, depth + 1)
        out += pickle.TUPLE
    elif t is dict:
        out += pickle.EMPTY_DICT
        if obj:
            out += pickle.MARK
            for k, v in obj.items():
                _dump(k, out, depth + 1)
                _dump(v, out, depth + 1)
            out += pickle.SETITEMS
    elif t is np.ndarray:
        _dump_array(obj, out)
    elif isinstance(obj, np.generic) and obj.dtype.kind in _PLAIN_KINDS:
        _dump(obj.item(), out, depth)
    else:
        raise TypeError(f"not plain data for DFL metadata: {t.__name__}")


def _dump_array(a: np.ndarray, out: bytearray) -> None:
    """What numpy 1.x writes for an array: _reconstruct(ndarray, (0,), b'b') then its state."""
    dt = _plain_dtype(a.dtype).newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
    raw = np.ascontiguousarray(a, dtype=dt).tobytes()
    out += _G_RECONSTRUCT + _G_NDARRAY + pickle.BININT1 + b"\x00" + pickle.TUPLE1
    out += pickle.SHORT_BINBYTES + b"\x01b" + pickle.TUPLE3 + pickle.REDUCE
    out += pickle.MARK + pickle.BININT1 + b"\x01"
    _dump(tuple(int(n) for n in a.shape), out, 1)
    code = f"{dt.kind}{dt.itemsize}".encode("ascii")
    out += _G_DTYPE + pickle.BINUNICODE + struct.pack("<I", len(code)) + code + pickle.NEWFALSE + pickle.NEWTRUE
    out += pickle.TUPLE3 + pickle.REDUCE
    _dump((3, "|" if dt.itemsize == 1 else "<", None, None, None, -1, -1, 0), out, 1)
    out += pickle.BUILD + pickle.NEWFALSE
    out += pickle.BINBYTES + struct.pack("<I", len(raw)) + raw
    out += pickle.TUPLE + pickle.BUILD
