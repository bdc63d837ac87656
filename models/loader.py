"""Finding, creating and loading models by class name: the one entry point for train and merge."""
from __future__ import annotations

import importlib
from pathlib import Path

from core import interact, log
from core import keras_backend as kb
from core.errors import UserError
from core.settings import Option
from models.base import ModelBase
from models.model_files import ModelFiles, find_models, other_class_of, rival_models, same_kind
from models.options import parse_saved

# class name -> (module, class); each module is imported only when its model is used
_CLASSES: dict[str, tuple[str, str]] = {
    "Quick96": ("models.quick96", "Quick96"),
    "SAEHD": ("models.saehd", "SAEHD"),
    "AMP": ("models.amp", "AMP"),
    "Original": ("models.original", "Original"),
    "Reenact": ("models.reenact", "Reenact"),
    "XSeg": ("models.xseg", "XSeg"),
}
MODEL_NAMES = tuple(_CLASSES)
DEFAULT_NEW_NAME = "new"


def model_class(name: str) -> type[ModelBase]:
    if name not in _CLASSES:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def train_flag_options() -> tuple[Option, ...]:
    """Every model's options, for `train`'s flags (a key shared by several models gets one flag; each
    model refuses the flags it does not have). The option modules import no Keras."""
    from models.amp_options import AMP_OPTIONS
    from models.original_options import ORIGINAL_OPTIONS
    from models.reenact_options import REENACT_OPTIONS
    from models.saehd_options import COMMON_OPTIONS, SAEHD_OPTIONS
    from models.xseg_options import XSEG_OPTIONS
    return SAEHD_OPTIONS + COMMON_OPTIONS + AMP_OPTIONS + ORIGINAL_OPTIONS + REENACT_OPTIONS + XSEG_OPTIONS


def choose_model_name(folder: Path, class_name: str, forced: str | None, silent: bool) -> str:
    """DFL's model choice: --force-model-name, else the newest model (silent or no terminal), else a menu
    where an index picks a model and any other text names a new one.

    A folder holding only models of other classes of the same kind is never silently given a new model:
    without a terminal (or with --silent-start) that is refused, naming what is there; on a terminal the
    user is told before naming the new model. A model of the other kind (an XSeg model beside a face
    model, as DFL keeps them in one folder) does not count."""
    if forced:
        other = other_class_of(folder, forced, class_name)
        if other and not ModelFiles(folder, forced, class_name).exists():
            raise UserError(f"model {forced!r} in this folder is a {other} model, not {class_name}: run with "
                            f"--model {other} to continue it, or choose another name for a new {class_name} model",
                            folder)
        return forced
    names = find_models(folder, class_name) if folder.exists() else []
    if not names:
        others = rival_models(folder, class_name)
        if others and (silent or not interact.is_interactive()):
            first_class = others[0][1]
            one = sum(c == first_class for _, c in others) == 1
            raise UserError(f"holds {_describe(others)}, not {class_name}; run with --model {first_class} to continue "
                            f"{'it' if one else 'one of them'}, or --force-model-name NAME to start a new {class_name} "
                            f"model beside {'it' if len(others) == 1 else 'them'}", folder)
        if silent or not interact.is_interactive():
            return DEFAULT_NEW_NAME
        if others:
            print(f"This folder holds {_describe(others)}, not {class_name}: the name you enter starts a new "
                  f"{class_name} model beside {'it' if len(others) == 1 else 'them'}.")
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


def _describe(models: list[tuple[str, str]]) -> str:
    """"SAEHD model 'a'" or "SAEHD models 'a', 'b' and Quick96 model 'q'", classes in the order given."""
    by_class: dict[str, list[str]] = {}
    for name, cls in models:
        by_class.setdefault(cls, []).append(repr(name))
    parts = [f"{cls} model{'s' if len(names) > 1 else ''} {', '.join(names)}" for cls, names in by_class.items()]
    return " and ".join(parts)


def choose_saved_model(folder: Path, class_name: str, forced: str | None) -> str:
    """Which saved model `merge` uses (only saved ones: it never creates a model): --force-model-name,
    else the only one, else DFL's menu on a terminal, else the most recently saved (and says which)."""
    if class_name not in MODEL_NAMES:
        model_class(class_name)  # raises the UserError that lists the classes (imports nothing)
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("model folder not found", folder)
    names = find_models(folder, class_name)
    if forced:
        if forced in names:
            return forced
        other = other_class_of(folder, forced, class_name)
        if other:
            raise UserError(f"model {forced!r} in this folder is a {other} model, not {class_name} "
                            f"(use --model {other})", folder)
        saved = f"; saved {class_name} models: {', '.join(names)}" if names else ""
        raise UserError(f"no trained {class_name} model named {forced!r} in this folder{saved}", folder)
    if not names:
        others = [c for c in MODEL_NAMES if c != class_name and same_kind(c, class_name) and find_models(folder, c)]
        hint = f" (it holds a {others[0]} model: use --model {others[0]})" if others else ""
        raise UserError(f"no trained {class_name} model in this folder{hint}", folder)
    return names[choose_newest_or_ask(names, folder, f"{class_name} models", "Choose one of saved models.")]


def choose_newest_or_ask(names: list[str], folder: Path, what: str, menu_title: str) -> int:
    """Which of several saved files (`names`, newest first) to use: the only one, else DFL's numbered menu
    on a terminal, else the newest, saying so and how to choose. Returns its index."""
    if len(names) == 1:
        return 0
    if not interact.is_interactive():
        log.info(f"{len(names)} {what} in {folder}: using {names[0]!r}, the most recently saved "
                 f"(choose one with --force-model-name NAME: {', '.join(names)})")
        return 0
    print(menu_title)
    for i, n in enumerate(names):
        print(f"[{i}] : {n}" + (" - latest" if i == 0 else ""))
    return interact.ask_int("", 0, (0, len(names) - 1))


def saved_options(files: ModelFiles, cls: type[ModelBase], state_meta: dict) -> dict:
    """The options file when present (the user may have edited it), else the copy inside the state;
    checked with the same declarations as the flags (see options.parse_saved)."""
    data = files.read_options()
    created = dict(state_meta.get("options") or {})
    path = saved_options_source(files)
    options = parse_saved(cls.OPTIONS, created if data is None else data, path, class_name=cls.CLASS_NAME,
                          fixed=cls.FIXED_OPTIONS)
    if data is not None:  # an edited shape would only show up as mismatched weights: say which option
        for opt in cls.OPTIONS:
            if opt.first_run_only and opt.key in options and opt.key in created:
                try:
                    was = opt.parse(created[opt.key])
                except ValueError:
                    continue
                if options[opt.key] != was:
                    raise UserError(f"option {opt.key!r} is {options[opt.key]!r} but the model was created with "
                                    f"{was!r}; it cannot change after creation (the weights have its shape)", path)
    return options


def saved_options_source(files: ModelFiles) -> Path:
    """Where a model's saved options are read from: its options file, else its state file."""
    return files.options if files.options.exists() else files.state


def load_predictor(model_dir: str | Path, class_name: str, name: str | None = None, precision: str = "auto") -> ModelBase:
    """A trained model in inference mode (a models.predictor.FacePredictor) for the merger; `name`
    None chooses as choose_saved_model does."""
    folder = Path(model_dir)
    name = choose_saved_model(folder, class_name, name)
    # Before the model's module imports Keras: prepare() sets the quiet TensorFlow logs, as train does.
    kb.prepare(precision)
    cls = model_class(class_name)
    files = ModelFiles(folder, name, class_name)
    state = files.read_state()
    model = cls(files, saved_options(files, cls, state.meta), training=False)
    model.load(state)
    return model
