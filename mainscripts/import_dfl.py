"""`importdfl`: a DeepFaceLab SAEHD model folder into this toolkit's SAEHD model, to train on and merge with.

DFL users keep models they trained for months: the import keeps DFL's options, iteration, loss
history, preview faces, weights and (AdaBelief) optimizer state, so `train` goes on at the next
iteration and `merge` gives DFL's faces. The DFL files are only read; the model is written by the
model's own atomic save, under the model folder's lock, and never over an existing model.
"""
from __future__ import annotations

from pathlib import Path

from core import interact, log
from core import keras_backend as kb
from core.errors import UserError
from core.fileio import ensure_writable_dir
from core.folder_lock import FolderLock
from models.dfl_files import (
    DFL_NETS,
    MAX_WEIGHTS_TOTAL_BYTES,
    DflModel,
    find_dfl_models,
    read_dfl_data,
    read_dfl_weights,
    total_weight_bytes,
)

IMPORTABLE = ("SAEHD",)
_EXISTS = "a model with this name is already here; nothing was changed (import under another name with --save-as NAME)"


def choose_dfl_model(folder: Path, name: str | None) -> DflModel:
    """The SAEHD model to import: `name`, else the only one, else a menu on a terminal, else a clear refusal."""
    if not folder.is_dir():
        raise UserError("DFL model folder not found", folder)
    models = find_dfl_models(folder)
    saehd = [m for m in models if m.cls in IMPORTABLE]
    if name is not None:
        chosen = [m for m in saehd if m.name == name]
        if chosen:
            return chosen[0]
        other = [m for m in models if m.name == name]
        if other:
            raise UserError(f"DFL model {name!r} is a {other[0].cls} model; only SAEHD models can be imported so far",
                            other[0].data_file)
        listed = f" (SAEHD models here: {', '.join(m.name for m in saehd)})" if saehd else ""
        raise UserError(f"no DFL SAEHD model named {name!r} (no {name}_SAEHD_data.dat){listed}", folder)
    if not saehd:
        if models:
            m = models[0]
            raise UserError(f"holds DFL {m.cls} model {m.name!r}; only SAEHD models can be imported so far", folder)
        raise UserError("no DFL model here (DFL saves a model as <name>_SAEHD_data.dat and <name>_SAEHD_*.npy)",
                        folder)
    if len(saehd) == 1:
        return saehd[0]
    if not interact.is_interactive():
        raise UserError(f"holds {len(saehd)} DFL SAEHD models ({', '.join(m.name for m in saehd)}): choose one "
                        f"with --name", folder)
    print("Choose the DFL model to import.")
    for i, m in enumerate(saehd):
        print(f"[{i}] : {m.name}" + (" - latest" if i == 0 else ""))
    return saehd[interact.ask_int("", 0, (0, len(saehd) - 1))]


def import_dfl(input_dir: str | Path, model_dir: str | Path, name: str | None = None,
               save_as: str | None = None) -> Path:
    """Import the DFL SAEHD model `name` from `input_dir` into `model_dir` as `save_as` (default the same
    name); returns the state file written."""
    dfl = choose_dfl_model(Path(input_dir), name)
    new_name = save_as or dfl.name
    if not new_name or any(c in new_name for c in "/\\\0") or new_name in (".", ".."):
        raise UserError(f"{new_name!r} cannot be a model name")
    from models.model_files import ModelFiles

    files = ModelFiles(Path(model_dir), new_name, "SAEHD")
    if files.exists():
        raise UserError(_EXISTS, files.state)
    data = read_dfl_data(dfl)
    kind = str(data.options.get("archi", "")).split("-")[0]
    nets = DFL_NETS.get(kind, ())
    for path in [dfl.weights_file(n) for n in nets]:
        if not path.is_file():
            raise UserError("is missing (DFL writes it with the model; copy the whole model folder)", path)
    size = total_weight_bytes([dfl.weights_file(n) for n in nets])
    if size > MAX_WEIGHTS_TOTAL_BYTES:
        raise UserError(f"the model's weight files hold {size} bytes; at most {MAX_WEIGHTS_TOTAL_BYTES} can be "
                        f"imported", dfl.folder)
    kb.prepare("float32")  # weights are float32 whatever precision later runs use
    from models.dfl_import import assign_weights, loss_history, preview_samples, saehd_options_from_dfl
    from models.saehd import SAEHD

    options, notes = saehd_options_from_dfl(data.options, SAEHD.OPTIONS, dfl.data_file)
    folder = ensure_writable_dir(model_dir)
    with FolderLock(folder, "importdfl"):
        if files.exists():  # saved by another run since the check above
            raise UserError(_EXISTS, files.state)
        model = SAEHD(files, options, training=True)
        assign_weights(model, nets, lambda net: (dfl.weights_file(net), read_dfl_weights(dfl.weights_file(net))))
        notes += _optimizer(model, dfl)
        history = loss_history(data, len(SAEHD.LOSS_NAMES))
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
    log.info(f"Imported DFL SAEHD model {dfl.name!r} ({options['archi']}, {options['resolution']} px, face type "
             f"{options['face_type']}) at iteration {data.iteration}: {files.state}")
    for note in notes:
        log.warning(note)
    log.info(f"Train it with: main.py train --model-dir {folder} --model SAEHD --force-model-name {new_name} ...")
    return files.state


def _optimizer(model, dfl: DflModel) -> list[str]:
    """Load DFL's optimizer state when its layout is ours (AdaBelief); one note when it is not."""
    from models.dfl_import import assign_optimizer
    path = dfl.weights_file("src_dst_opt")
    if not model.options.get("adabelief", True):
        return ["DFL's RMSprop optimizer state is not imported (its layout is not known here): the optimizer "
                "starts fresh"]
    if not path.is_file():
        return [f"{path.name} is missing: the optimizer starts fresh"]
    try:
        arrays = read_dfl_weights(path)
    except UserError as e:
        if "asks for code" in e.problem or "refusing" in e.problem:
            raise
        return [f"{path.name} could not be read ({e.problem}): the optimizer starts fresh"]
    steps = assign_optimizer(model, arrays)
    if steps is None:
        return [f"{path.name} does not match this model's layout: the optimizer starts fresh"]
    return []
