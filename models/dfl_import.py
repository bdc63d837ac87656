"""A DFL SAEHD model into this toolkit's SAEHD: options, weights, optimizer state, history, preview faces.

The options keep DFL's keys and values (checked by our SAEHD declarations, plus `dfl_layout`, so the
networks are built with DFL's padding and heads); weights are mapped by models.dfl_weights. What
cannot come over is said in one line each (`notes`) and starts as a model made here would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.errors import UserError
from core.settings import parse_dict
from models.dfl_files import DflData
from models.dfl_weights import dfl_key, dfl_optimizer_keys, to_ours

# DFL options with no counterpart here, and what happens instead.
NOT_CARRIED = {
    "models_opt_on_gpu": None,  # where weights live is chosen per run (--cpu-only, --force-gpu-idxs): no note
    "target_iter": "DFL's target iteration is not kept: give train --target-iteration",
    "blur_out_mask": "DFL's blur_out_mask is not implemented here: training goes on without it",
}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def saehd_options_from_dfl(dfl: dict[str, Any], options: tuple, path: Path) -> tuple[dict[str, Any], list[str]]:
    """Our SAEHD options from DFL's (`options`: SAEHD.OPTIONS); a bad value is a UserError naming `path`
    and the key. Returns (options, notes on what was not carried over)."""
    notes: list[str] = []
    data: dict[str, Any] = {}
    declared = {opt.key for opt in options}
    for key, value in dfl.items():
        value = _plain(value)
        if key == "lr_dropout" and isinstance(value, str):  # DFL: n, y, or cpu (y with the mask made on the CPU)
            value = value.strip().lower() in ("y", "cpu")
        if key in declared and key != "dfl_layout":
            data[key] = value
        elif key in NOT_CARRIED:
            if NOT_CARRIED[key] and (value and value != "n"):
                notes.append(NOT_CARRIED[key])
        else:
            notes.append(f"DFL option {key!r} ({value!r}) is unknown here and not used")
    for required in ("resolution", "face_type", "archi", "ae_dims", "e_dims", "d_dims", "d_mask_dims"):
        if required not in data:
            raise UserError(f"DFL model data has no {required!r} option; the network cannot be built without it", path)
    missing = [opt for opt in options if opt.key not in data and opt.key != "dfl_layout"]
    for opt in missing:
        data[opt.key] = opt.default_for(data)
    if missing:
        notes.append(f"not in DFL's options, defaults used: {', '.join(f'{o.key} {data[o.key]!r}' for o in missing)}")
    data["dfl_layout"] = True
    return parse_dict(options, data, path, what="DFL option {key!r}"), notes


def _net_of(model: Any) -> dict[int, tuple[str, Any]]:
    return {id(v): (name, v) for name, net in model.nets.items() for v in net.weights}


def assign_weights(model: Any, nets: tuple[str, ...], read: Callable[[str], tuple[Path, dict[str, np.ndarray]]]) -> None:
    """Copy DFL's weights into `model.nets[name]` for each name in `nets`; `read(name)` gives (file, arrays).
    Every variable must be found with its shape and finite values, and every DFL array must be used:
    anything else is a model of other options or another layout, refused naming the file."""
    spec = model.spec
    for name in nets:
        path, arrays = read(name)
        used: set[str] = set()
        values = []
        for var in model.nets[name].weights:
            key = dfl_key(name, var.path, spec)
            if key not in arrays:
                raise UserError(f"has no {key!r}: not the network SAEHD {spec.archi} builds with the options in "
                                f"data.dat", path)
            value = to_ours(var.path, arrays[key], spec)
            if tuple(value.shape) != tuple(var.shape):
                raise UserError(f"{key!r} is shaped {tuple(arrays[key].shape)}, but the options in data.dat need "
                                f"{tuple(var.shape)}", path)
            if not np.isfinite(value).all():
                raise UserError(f"{key!r} holds NaN or infinite values: the DFL model is broken (use one of its "
                                f"autobackups)", path)
            used.add(key)
            values.append((var, value))
        extra = sorted(set(arrays) - used)
        if extra:
            raise UserError(f"holds {len(extra)} variables SAEHD {spec.archi} does not have (e.g. {extra[0]!r}); "
                            f"this DFL version's layout is not supported", path)
        for var, value in values:
            var.assign(value)


def assign_optimizer(model: Any, arrays: dict[str, np.ndarray]) -> int | None:
    """DFL's AdaBelief state (`src_dst_opt.npy`) into our AdaBelief (same update rule, no bias
    correction): its step count, or None when the layout does not match (nothing assigned then)."""
    opt = model.optimizers.get("src_dst")
    if opt is None or not hasattr(opt, "_ms") or "iters:0" not in arrays:
        return None
    spec, where = model.spec, _net_of(model)
    plan = []
    for var in model.steps[0].train_vars:
        name, _ = where[id(var)]
        ms_key, vs_key = dfl_optimizer_keys(name, dfl_key(name, var.path, spec))
        if ms_key not in arrays or vs_key not in arrays:
            return None
        m, v = to_ours(var.path, arrays[ms_key], spec), to_ours(var.path, arrays[vs_key], spec)
        if m.shape != tuple(var.shape) or v.shape != tuple(var.shape) or not (np.isfinite(m).all() and np.isfinite(v).all()):
            return None
        plan.append((opt._get_variable_index(var), m, v))
    steps = int(np.asarray(arrays["iters:0"]).reshape(-1)[0]) if np.asarray(arrays["iters:0"]).size == 1 else -1
    if steps < 0:
        return None
    for idx, m, v in plan:
        opt._ms[idx].assign(m)
        opt._vs[idx].assign(v)
    opt.iterations.assign(steps)
    return steps


def loss_history(data: DflData, n_losses: int) -> np.ndarray | None:
    """DFL's per-iteration losses as (iterations, n_losses) float32, or None when they are not that."""
    try:
        history = np.asarray(data.loss_history, np.float32)
    except (TypeError, ValueError):
        return None
    if history.ndim != 2 or history.shape[1] != n_losses or len(history) > data.iteration:
        return None
    return history


def preview_samples(data: DflData, resolution: int) -> dict[str, np.ndarray] | None:
    """DFL's preview batch ([src, dst], each [warped, target, mask, eyes-mouth mask]) as our stored
    preview faces (uint8 target faces and masks), or None when it is not that."""
    sides = data.sample_for_preview
    if not isinstance(sides, list) or len(sides) != 2:
        return None
    out = {}
    for side, arrays in zip(("src", "dst"), sides):
        if not isinstance(arrays, list) or len(arrays) < 3:
            return None
        face, mask = arrays[1], arrays[2]
        if not (isinstance(face, np.ndarray) and isinstance(mask, np.ndarray) and face.ndim == 4 and mask.ndim == 4
                and face.shape[1:] == (resolution, resolution, 3) and mask.shape == face.shape[:3] + (1,)):
            return None
        out[f"{side}_face"] = (np.clip(face, 0, 1) * 255 + 0.5).astype(np.uint8)
        out[f"{side}_mask"] = (np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8)
    return out
