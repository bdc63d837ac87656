"""Finding, creating and loading models by class name: the one entry point for train and merge."""
from __future__ import annotations

from pathlib import Path

from core import interact, log
from core import keras_backend as kb
from core.errors import UserError
from models.base import ModelBase
from models.model_files import ModelFiles, find_models, other_class_of
from models.options import parse_saved

MODEL_NAMES = ("Quick96", "SAEHD")
DEFAULT_NEW_NAME = "new"


def model_class(name: str) -> type[ModelBase]:
    if name == "Quick96":
        from models.quick96 import Quick96
        return Quick96
    if name == "SAEHD":
        from models.saehd import SAEHD
        return SAEHD
    raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def choose_model_name(folder: Path, class_name: str, forced: str | None, silent: bool) -> str:
    """DFL's model choice: --force-model-name, else the newest model (silent or no terminal), else a menu
    where an index picks a model and any other text names a new one."""
    if forced:
        other = other_class_of(folder, forced, class_name)
        if other and not ModelFiles(folder, forced, class_name).exists():
            raise UserError(f"model {forced!r} in this folder is a {other} model, not {class_name}", folder)
        return forced
    names = find_models(folder, class_name) if folder.exists() else []
    if not names:
        if silent or not interact.is_interactive():
            return DEFAULT_NEW_NAME
        return interact.ask_str("Enter a name of a new model", DEFAULT_NEW_NAME).strip().replace(" ", "_") or DEFAULT_NEW_NAME
    if silent or not interact.is_interactive():
        log.info(f"Using model {names[0]!r} (the most recently saved {class_name} model)")
        return names[0]
    print("Choose one of saved models, or enter a name to create a new model.")
    for i, n in enumerate(names):
        print(f"[{i}] : {n}" + (" - latest" if i == 0 else ""))
    answer = interact.ask_str("", "0").strip()
    if answer.isdigit() and int(answer) < len(names):
        return names[int(answer)]
    return answer.replace(" ", "_") or DEFAULT_NEW_NAME


def saved_options(files: ModelFiles, cls: type[ModelBase], state_meta: dict) -> dict:
    """The options file when present (the user may have edited it), else the copy inside the state."""
    data = files.read_options()
    if data is None:
        data = dict(state_meta.get("options") or {})
    return parse_saved(cls.OPTIONS, data, files.options)


def load_predictor(model_dir: str | Path, class_name: str, name: str | None = None, precision: str = "auto") -> ModelBase:
    """A trained model in inference mode (a models.predictor.FacePredictor) for the merger."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise UserError("model folder not found", folder)
    cls = model_class(class_name)
    if name is None:
        names = find_models(folder, class_name)
        if not names:
            others = [c for c in MODEL_NAMES if c != class_name and find_models(folder, c)]
            hint = f" (it holds a {others[0]} model: use --model {others[0]})" if others else ""
            raise UserError(f"no trained {class_name} model in this folder{hint}", folder)
        name = names[0]
    files = ModelFiles(folder, name, class_name)
    kb.prepare(precision)
    state = files.read_state()
    model = cls(files, saved_options(files, cls, state.meta), training=False)
    model.load(state)
    return model
