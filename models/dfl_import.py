"""A DFL SAEHD, Quick96, AMP or XSeg model into this toolkit's: options, weights, optimizer state, history,
preview faces.

The options keep DFL's keys and values (checked by our declarations, plus `dfl_layout`, so the
networks are built with DFL's exact layers); weights are mapped by models.dfl_weights. What cannot
come over is said in one line each (`notes`) and starts as a model made here would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.errors import UserError
from core.settings import parse_dict
from models.dfl_files import XSEG_RESOLUTION, DflData
from models.dfl_weights import amp_dfl_key, amp_to_ours, dfl_key, dfl_optimizer_key, to_ours, xseg_dfl_key, xseg_to_ours

# DFL options with no counterpart here, and what happens instead.
NOT_CARRIED = {
    "models_opt_on_gpu": None,  # where weights live is chosen per run (--cpu-only, --force-gpu-idxs): no note
    "target_iter": "DFL's target iteration is not kept: give train --target-iteration",
    "blur_out_mask": "DFL's blur_out_mask is not implemented here: training goes on without it",
}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


SAEHD_REQUIRED = ("resolution", "face_type", "archi", "ae_dims", "e_dims", "d_dims", "d_mask_dims")
AMP_REQUIRED = ("resolution", "face_type", "ae_dims", "inter_dims", "e_dims", "d_dims", "d_mask_dims")


def saehd_options_from_dfl(dfl: dict[str, Any], options: tuple, path: Path,
                           required: tuple[str, ...] = SAEHD_REQUIRED,
                           fixed: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Our SAEHD (or AMP: `required` AMP_REQUIRED) options from DFL's (`options`: the class's OPTIONS;
    `fixed`: our options whose value DFL's behaviour dictates); a bad value is a UserError naming `path`
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
    for key in required:
        if key not in data:
            raise UserError(f"DFL model data has no {key!r} option; the network cannot be built without it", path)
    data.update(fixed or {})
    missing = [opt for opt in options if opt.key not in data and opt.key != "dfl_layout"]
    for opt in missing:
        data[opt.key] = opt.default_for(data)
    if missing:
        notes.append(f"not in DFL's options, defaults used: {', '.join(f'{o.key} {data[o.key]!r}' for o in missing)}")
    data["dfl_layout"] = True
    return parse_dict(options, data, path, what="DFL option {key!r}"), notes


def _net_of(model: Any) -> dict[int, tuple[str, Any]]:
    return {id(v): (name, v) for name, net in model.nets.items() for v in net.weights}


def assign_net(variables: list, path: Path, arrays: dict[str, np.ndarray], key_of: Callable[[str], str],
               convert: Callable[[str, np.ndarray], np.ndarray], what: str) -> None:
    """Copy DFL's `arrays` (read from `path`) into `variables`: `key_of(var.path)` names DFL's array,
    `convert` maps its layout to ours. Every variable must be found with its shape and finite values,
    and every DFL array must be used: anything else is a model of other options or another layout,
    refused naming the file (`what`: the network, in words)."""
    used: set[str] = set()
    values = []
    for var in variables:
        key = key_of(var.path)
        if key not in arrays:
            raise UserError(f"has no {key!r}: not the network {what} builds with the options in data.dat", path)
        value = convert(var.path, arrays[key])
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
        raise UserError(f"holds {len(extra)} variables {what} does not have (e.g. {extra[0]!r}); this DFL "
                        f"version's layout is not supported", path)
    for var, value in values:
        var.assign(value)


def assign_weights(model: Any, nets: tuple[str, ...], read: Callable[[str], tuple[Path, dict[str, np.ndarray]]]) -> None:
    """Copy DFL's weights into `model.nets[name]` (SAEHD or Quick96) for each name in `nets`; `read(name)`
    gives (file, arrays). See assign_net for what is refused."""
    spec = model.spec
    for name in nets:
        path, arrays = read(name)
        assign_net(model.nets[name].weights, path, arrays, lambda p, n=name: dfl_key(n, p, spec),
                   lambda p, v: to_ours(p, v, spec), f"{model.CLASS_NAME} {spec.archi}")


def assign_optimizer_state(opt: Any, train_vars: list, arrays: dict[str, np.ndarray],
                           key_of: Callable[[Any], tuple[str, str]],
                           convert: Callable[[str, np.ndarray], np.ndarray]) -> int | None:
    """DFL's optimizer file (`iters:0`, then `<slot>_<full weight name>` for each of the optimizer's
    DFL_SLOTS: AdaBelief `ms`, `vs`; RMSprop `acc`) into our optimizer of the same kind (same update
    rule, no bias correction). `key_of(var)` gives (DFL network, weight key). Returns DFL's step count,
    or None when the layout does not match (nothing is assigned then)."""
    slots = getattr(opt, "DFL_SLOTS", ())
    if not slots or "iters:0" not in arrays:
        return None
    opt.build(train_vars)  # no-op when built
    plan = []
    for var in train_vars:
        net, key = key_of(var)
        idx = opt._get_variable_index(var)
        for slot in slots:
            name = dfl_optimizer_key(slot, net, key)
            if name not in arrays:
                return None
            value = convert(var.path, arrays[name])
            if value.shape != tuple(var.shape) or not np.isfinite(value).all():
                return None
            plan.append((opt.slot_variables(slot)[idx], value))
    iters = np.asarray(arrays["iters:0"])
    if iters.size != 1 or iters.dtype.kind not in "iu" or int(iters.reshape(-1)[0]) < 0:
        return None
    for target, value in plan:
        target.assign(value)
    steps = int(iters.reshape(-1)[0])
    opt.iterations.assign(steps)
    return steps


def assign_optimizer(model: Any, arrays: dict[str, np.ndarray]) -> int | None:
    """DFL's `src_dst_opt.npy` (AdaBelief or RMSprop, whichever the model trains with) into a SAEHD or
    Quick96 model's optimizer: DFL's step count, or None when the layout does not match."""
    opt = model.optimizers.get("src_dst")
    if opt is None:
        return None
    spec, where = model.spec, _net_of(model)

    def key_of(var):
        name, _ = where[id(var)]
        return name, dfl_key(name, var.path, spec)
    return assign_optimizer_state(opt, list(model.steps[0].train_vars), arrays, key_of,
                                  lambda p, v: to_ours(p, v, spec))


def loss_history(data: DflData, n_losses: int) -> np.ndarray | None:
    """DFL's per-iteration losses as (iterations, n_losses) float32, or None when they are not that.
    A history of one loss per iteration (DFL's XSeg: the mean over src and dst faces) gives that
    value for each of our losses, whose mean it is."""
    try:
        history = np.asarray(data.loss_history, np.float32)
    except (TypeError, ValueError):
        return None
    if history.ndim == 2 and history.shape[1] == 1 and n_losses > 1:
        history = np.repeat(history, n_losses, axis=1)
    if history.ndim != 2 or history.shape[1] != n_losses or len(history) > data.iteration:
        return None
    if not np.isfinite(history).all():
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


# --- AMP -----------------------------------------------------------------------------------------------

def amp_options_from_dfl(dfl: dict[str, Any], options: tuple, path: Path) -> tuple[dict[str, Any], list[str]]:
    """Our AMP options from DFL's AMP_data.dat options (same names; `options`: AMP.OPTIONS), with
    `train_inters` off: DFL's AMP never trains its inter heads, and its optimizer holds no state for them."""
    return saehd_options_from_dfl(dfl, options, path, AMP_REQUIRED, fixed={"train_inters": False})


def _amp_convert(model: Any) -> Callable[[str, np.ndarray], np.ndarray]:
    spec = model.spec
    return lambda p, v: amp_to_ours(p, v, spec.lowest, spec.e_dims * 8, spec.inter_dims)


def assign_amp(model: Any, read: Callable[[str], tuple[Path, dict[str, np.ndarray]]]) -> None:
    """DFL's encoder, inter_src, inter_dst and decoder files into a DFL-layout AMP (see assign_net for
    what is refused)."""
    for name in ("encoder", "inter_src", "inter_dst", "decoder"):
        path, arrays = read(name)
        assign_net(model.nets[name].weights, path, arrays, amp_dfl_key, _amp_convert(model), f"DFL's AMP {name}")


def assign_amp_optimizer(model: Any, arrays: dict[str, np.ndarray]) -> int | None:
    """DFL's AMP `src_dst_opt.npy` (AdaBelief over the encoder's and decoder's weights) into the model's
    AdaBelief: DFL's step count, or None when the layout does not match (e.g. inters trained here)."""
    opt = model.optimizers.get("src_dst")
    if opt is None:
        return None
    where = _net_of(model)
    return assign_optimizer_state(opt, list(model.steps[0].train_vars), arrays,
                                  lambda var: (where[id(var)][0], amp_dfl_key(var.path)), _amp_convert(model))


# --- Quick96 ------------------------------------------------------------------------------------------

QUICK96_IGNORED = {"batch_size", "models_opt_on_gpu"}  # DFL fixes them too (batch 4), or they say where weights live


def quick96_options_from_dfl(dfl: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Our Quick96 options (its configuration is fixed, in DFL as here; only `dfl_layout` is stored) and
    notes on DFL options that are not used."""
    unused = sorted(k for k in dfl if k not in QUICK96_IGNORED)
    notes = [f"DFL options {', '.join(unused)} are not used: Quick96's configuration is fixed"] if unused else []
    return {"dfl_layout": True}, notes


# --- XSeg ---------------------------------------------------------------------------------------------

def xseg_dims(arrays: dict[str, np.ndarray], path: Path) -> int:
    """XSeg's base width, read from the first convolution (DFL: 32, 3x3 from 3 channels)."""
    first = arrays.get("conv01/conv/weight:0")
    if first is None or first.ndim != 4 or tuple(first.shape[:3]) != (3, 3, 3):
        raise UserError("has no 3x3 'conv01/conv/weight:0' from 3 channels: not a DFL XSeg network", path)
    dims = int(first.shape[3])
    if not 2 <= dims <= 128:
        raise UserError(f"XSeg's base width is {dims}; at most 128 can be imported (DFL's is 32)", path)
    return dims


def xseg_options_from_dfl(dfl: dict[str, Any], dims: int, options: tuple, path: Path) -> tuple[dict[str, Any], list[str]]:
    """Our XSeg options from DFL's XSeg_data.dat options (face_type, batch_size, pretrain) and the width
    read from the weights; `options`: XSEG_OPTIONS. A bad value is a UserError naming `path`."""
    notes: list[str] = []
    data: dict[str, Any] = {"resolution": XSEG_RESOLUTION, "dims": dims}
    declared = {opt.key for opt in options}
    for key, value in dfl.items():
        value = _plain(value)
        if key == "pretrain":
            if value:
                notes.append("DFL's XSeg was in pretrain mode: it trains on masks here (pretraining is not "
                             "carried over)")
        elif key in declared and key not in data:
            data[key] = value
        elif key != "models_opt_on_gpu":
            notes.append(f"DFL option {key!r} ({value!r}) is unknown here and not used")
    if "face_type" not in data:
        data["face_type"] = "wf"
        notes.append("DFL's XSeg data has no face type: whole face ('wf', DFL's default) assumed")
    for opt in options:
        if opt.key not in data:
            data[opt.key] = opt.default_for(data)
    data["dfl_layout"] = True
    return parse_dict(options, data, path, what="DFL option {key!r}"), notes


def xseg_model(files: Any, options: dict[str, Any], *, training: bool) -> Any:
    """An XSeg model with DFL's network (options["dfl_layout"] True) and DFL's training recipe."""
    from models.xseg import XSeg
    if not options.get("dfl_layout"):
        raise ValueError("an imported XSeg model needs dfl_layout")
    return XSeg(files, options, training=training)


def xseg_bottleneck(model: Any) -> tuple[int, int]:
    """(side, channels) of the XSeg bottleneck DFL flattens channel-major."""
    from models.xseg_net import LEVEL_WIDTHS
    from models.xseg_options import XSEG_LEVELS
    return model.resolution >> XSEG_LEVELS, int(model.options["dims"]) * LEVEL_WIDTHS[-1]


def assign_xseg(model: Any, path: Path, arrays: dict[str, np.ndarray]) -> None:
    """DFL's XSeg_256.npy into the DFL-layout XSeg network (see assign_net for what is refused)."""
    side, ch = xseg_bottleneck(model)
    assign_net(model.nets["xseg"].weights, path, arrays, xseg_dfl_key,
               lambda p, v: xseg_to_ours(p, v, side, ch), "DFL's XSeg")


def assign_xseg_optimizer(model: Any, arrays: dict[str, np.ndarray]) -> int | None:
    """DFL's XSeg_256_opt.npy (RMSprop, network scope `XSeg`) into the model's RMSprop: DFL's step count,
    or None when the model trains with another optimizer or the layout does not match."""
    opt = model.optimizers.get("xseg")
    if opt is None:
        return None
    side, ch = xseg_bottleneck(model)
    return assign_optimizer_state(opt, list(model.nets["xseg"].trainable_variables), arrays,
                                  lambda var: ("XSeg", xseg_dfl_key(var.path)),
                                  lambda p, v: xseg_to_ours(p, v, side, ch))
