"""`importdfl`: a DeepFaceLab SAEHD, Quick96, AMP or XSeg model folder into this toolkit's model of the same
class, to train on and merge (or mask) with.

DFL users keep models they trained for months: the import keeps DFL's options, iteration, loss
history, preview faces, weights and optimizer state (AdaBelief or RMSprop), so `train` goes on at the
next iteration and `merge` gives DFL's faces (XSeg: DFL's masks). The DFL files are only read; the
model is written by the model's own atomic save, under the model folder's lock, and never over an
existing model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core import interact, log
from core import keras_backend as kb
from core.errors import UserError
from core.fileio import ensure_writable_dir
from core.folder_lock import FolderLock
from models.dfl_files import (
    DFL_NETS,
    MAX_WEIGHTS_TOTAL_BYTES,
    XSEG,
    XSEG_RESOLUTION,
    DflModel,
    find_dfl_models,
    read_dfl_data,
    read_dfl_weights,
    total_weight_bytes,
)

IMPORTABLE = ("SAEHD", "AMP", "Quick96", XSEG)
_CAN = "SAEHD, AMP, Quick96 and XSeg models can"
# DFL classes this toolkit has but cannot import yet, and why
NOT_YET: dict[str, str] = {}
_EXISTS = "a model with this name is already here; nothing was changed (import under another name with --save-as NAME)"


def _cannot(model: DflModel) -> str:
    why = NOT_YET.get(model.cls, f"{model.cls} models cannot be imported")
    return f"holds DFL {model.cls} model {model.name!r}; {why}; {_CAN}"


def choose_dfl_model(folder: Path, name: str | None) -> DflModel:
    """The DFL model to import: `name` (DFL's XSeg is named XSeg), else the only importable one, else a
    menu on a terminal, else a clear refusal."""
    if not folder.is_dir():
        raise UserError("DFL model folder not found", folder)
    models = find_dfl_models(folder)
    usable = [m for m in models if m.cls in IMPORTABLE]
    if name is not None:
        chosen = [m for m in usable if m.name == name]
        if chosen:
            return chosen[0]
        other = [m for m in models if m.name == name]
        if other:
            raise UserError(_cannot(other[0]), other[0].data_file)
        listed = f" (importable models here: {_names(usable)})" if usable else ""
        raise UserError(f"no importable DFL model named {name!r} (no {name}_<Class>_data.dat){listed}", folder)
    if not usable:
        if models:
            raise UserError(_cannot(models[0]), folder)
        raise UserError("no DFL model here (DFL saves a model as <name>_SAEHD_data.dat and <name>_SAEHD_*.npy, "
                        "Quick96 likewise, XSeg as XSeg_data.dat and XSeg_256.npy)", folder)
    if len(usable) == 1:
        return usable[0]
    if not interact.is_interactive():
        raise UserError(f"holds {len(usable)} DFL models ({_names(usable)}): choose one with --name", folder)
    print("Choose the DFL model to import.")
    for i, m in enumerate(usable):
        print(f"[{i}] : {m.name} ({m.cls})" + (" - latest" if i == 0 else ""))
    return usable[interact.ask_int("", 0, (0, len(usable) - 1))]


def _names(models: list[DflModel]) -> str:
    return ", ".join(f"{m.name} ({m.cls})" for m in models)


def import_dfl(input_dir: str | Path, model_dir: str | Path, name: str | None = None,
               save_as: str | None = None) -> Path:
    """Import the DFL model `name` from `input_dir` into `model_dir` as `save_as` (default the same
    name); returns the state file written."""
    dfl = choose_dfl_model(Path(input_dir), name)
    new_name = save_as or dfl.name
    if not new_name or any(c in new_name for c in "/\\\0") or new_name in (".", ".."):
        raise UserError(f"{new_name!r} cannot be a model name")
    from models.model_files import ModelFiles

    files = ModelFiles(Path(model_dir), new_name, dfl.cls)
    if files.exists():
        raise UserError(_EXISTS, files.state)
    data = read_dfl_data(dfl)
    if dfl.cls == XSEG:
        return _import_xseg(dfl, data, files, Path(model_dir))
    return _import_swap(dfl, data, files, Path(model_dir))


def _weight_files(dfl: DflModel, nets: tuple[str, ...]) -> list[Path]:
    """The weight files, each present, all within the size bound (checked before any is read)."""
    paths = [dfl.weights_file(n) for n in nets]
    for path in paths:
        if not path.is_file():
            raise UserError("is missing (DFL writes it with the model; copy the whole model folder)", path)
    size = total_weight_bytes(paths)
    if size > MAX_WEIGHTS_TOTAL_BYTES:
        raise UserError(f"the model's weight files hold {size} bytes; at most {MAX_WEIGHTS_TOTAL_BYTES} can be "
                        f"imported", dfl.folder)
    return paths


def _import_swap(dfl: DflModel, data: Any, files: Any, model_dir: Path) -> Path:
    """SAEHD (every archi), Quick96 (DFL's df-ud, 96 px) or AMP: the same networks, DFL's names."""
    kind = {"Quick96": "df", "AMP": "amp"}.get(dfl.cls) or str(data.options.get("archi", "")).split("-")[0]
    nets = DFL_NETS.get(kind, ())
    if not nets:
        raise UserError(f"DFL option 'archi' is {data.options.get('archi')!r}; df or liae (with -u/d/t/c) can be "
                        f"imported", dfl.data_file)
    # every file is read (and a hostile one refused) before anything is built
    weights = {net: (path, read_dfl_weights(path)) for net, path in zip(nets, _weight_files(dfl, nets))}
    opt_path = dfl.weights_file("src_dst_opt")
    opt_arrays, opt_notes = _read_optimizer_file(opt_path)
    kb.prepare("float32")  # weights are float32 whatever precision later runs use
    from models.dfl_import import (
        amp_options_from_dfl,
        assign_amp,
        assign_amp_optimizer,
        assign_optimizer,
        assign_weights,
        loss_history,
        preview_samples,
    )
    from models.loader import model_class

    cls = model_class(dfl.cls)
    if dfl.cls == "Quick96":
        from models.dfl_import import quick96_options_from_dfl
        options, notes = quick96_options_from_dfl(data.options)
    elif dfl.cls == "AMP":
        options, notes = amp_options_from_dfl(data.options, cls.OPTIONS, dfl.data_file)
        notes.append("the inter heads are not trained (DFL's AMP behaviour; train_inters is off for this model)")
    else:
        from models.dfl_import import saehd_options_from_dfl
        options, notes = saehd_options_from_dfl(data.options, cls.OPTIONS, dfl.data_file)
    folder = ensure_writable_dir(model_dir)
    with FolderLock(folder, "importdfl"):
        if files.exists():  # saved by another run since the check above
            raise UserError(_EXISTS, files.state)
        model = cls(files, options, training=True)
        if dfl.cls == "AMP":
            assign_amp(model, weights.__getitem__)
        else:
            assign_weights(model, nets, weights.__getitem__)
        weights.clear()
        notes += opt_notes
        assign_opt = assign_amp_optimizer if dfl.cls == "AMP" else assign_optimizer
        if opt_arrays is not None and assign_opt(model, opt_arrays) is None:
            notes.append(f"{opt_path.name} does not match this model's optimizer or layout: the optimizer starts "
                         f"fresh")
        history = loss_history(data, len(cls.LOSS_NAMES))
        if history is None:
            notes.append("DFL's loss history is not a list of [src, dst] losses per iteration: not imported")
        else:
            model.loss_history = history
        preview = preview_samples(data, model.resolution)
        if preview is None:
            notes.append("DFL's preview faces are not imported: new ones are picked at the first training run")
        else:
            model.preview_samples = preview
        if float(options.get("gan_power") or 0) > 0 and dfl.weights_file("GAN").exists():
            notes.append("DFL's GAN discriminator (GAN.npy) is not imported (another network here): it starts "
                         "from random weights")
        if float(options.get("true_face_power") or 0) > 0 and dfl.weights_file("code_discriminator").exists():
            notes.append("DFL's true-face discriminator (code_discriminator.npy) is not imported: it starts "
                         "from random weights")
        if files.summary.exists():  # same name, same folder: DFL's summary is text it rewrites at every save
            notes.append(f"{files.summary.name} now describes the imported model (DFL rewrites it when it saves)")
        model.iteration = data.iteration
        model.save()
    o = model.options
    kind = o.get("archi") or f"inter dims {o.get('inter_dims')}, morph factor {o.get('morph_factor')}"
    log.info(f"Imported DFL {dfl.cls} model {dfl.name!r} ({kind}, {o['resolution']} px, face type "
             f"{o['face_type']}) at iteration {data.iteration}: {files.state}")
    return _done(notes, folder, dfl.cls, files)


def _import_xseg(dfl: DflModel, data: Any, files: Any, model_dir: Path) -> Path:
    """DFL's XSeg (XSeg_256.npy, XSeg_256_opt.npy) into an XSeg model with DFL's exact network."""
    path = _weight_files(dfl, (str(XSEG_RESOLUTION),))[0]
    arrays = read_dfl_weights(path)
    opt_path = dfl.weights_file(f"{XSEG_RESOLUTION}_opt")
    opt_arrays, notes = _read_optimizer_file(opt_path)  # a hostile file is refused before anything is built
    kb.prepare("float32")
    from models.dfl_import import (
        assign_xseg,
        assign_xseg_optimizer,
        loss_history,
        xseg_dims,
        xseg_model,
        xseg_options_from_dfl,
    )
    from models.xseg import XSeg

    options, more = xseg_options_from_dfl(data.options, xseg_dims(arrays, path), XSeg.OPTIONS, dfl.data_file)
    notes += more
    folder = ensure_writable_dir(model_dir)
    with FolderLock(folder, "importdfl"):
        if files.exists():
            raise UserError(_EXISTS, files.state)
        model = xseg_model(files, options, training=True)
        assign_xseg(model, path, arrays)
        if opt_arrays is not None and assign_xseg_optimizer(model, opt_arrays) is None:
            notes.append(f"{opt_path.name} does not match this model's optimizer or layout: the optimizer starts "
                         f"fresh")
        history = loss_history(data, len(XSeg.LOSS_NAMES))
        if history is None:
            notes.append("DFL's loss history is not one loss per iteration: not imported")
        else:
            model.loss_history = history
        model.iteration = data.iteration
        model.save()
    log.info(f"Imported DFL XSeg ({options['resolution']} px, face type {options['face_type']}, base width "
             f"{options['dims']}) at iteration {data.iteration}: {files.state}")
    return _done(notes, folder, XSEG, files)


def _done(notes: list[str], folder: Path, cls: str, files: Any) -> Path:
    for note in notes:
        log.warning(note)
    log.info(f"Train it with: main.py train --model-dir {folder} --model {cls} --force-model-name {files.name} ...")
    return files.state


def _read_optimizer_file(path: Path) -> tuple[dict | None, list[str]]:
    """(arrays, []) or (None, [why the optimizer starts fresh]). A file that asks to run code is refused
    like any other (UserError)."""
    if not path.is_file():
        return None, [f"{path.name} is missing: the optimizer starts fresh"]
    try:
        return read_dfl_weights(path), []
    except UserError as e:
        if "asks for code" in e.problem or "refusing" in e.problem:
            raise
        return None, [f"{path.name} could not be read ({e.problem}): the optimizer starts fresh"]
