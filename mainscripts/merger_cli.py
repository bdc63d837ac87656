"""`merge`: put the trained src face onto every dst frame (DFL's merger).

Orchestration only: check the inputs, load the model, choose interactive or batch, and hand over to
merger/ (window, session, batch pipeline). Without a terminal and without --config, it merges in
batch with the default settings and says so: scripts never wait on a prompt or a window. Each setting
also has its own flag (`--erode 40 --mode seamless`, declared in merger.config.MERGE_OPTIONS); given
flags win over --config's values and, like --config, choose batch mode unless --interactive is given
(then they are the window's starting settings). The run's own choices, interactive or batch and the
number of compositing workers, are declared here (RUN_OPTIONS): DFL's two questions, and their flags.

A `.dfm` file (DeepFaceLive's ONNX model: ours, DFL's or a community one) goes wherever a model goes:
`--model-dir path/X.dfm`, or `--model DFM` to take a .dfm from the model folder. It runs through onnxruntime
(models.dfm_predictor); its merger session is `<stem>_DFM_merger_session.json` beside the file.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from core import interact, log
from core.errors import UserError
from core.fileio import ensure_writable_dir, remove_stale_partials
from core.folder_lock import FolderLock
from core.settings import Option, parse_flags, resolve
from core.workers import default_worker_count
from facelib.face_type import SHORT_NAMES, FaceType
from merger.config import MERGE_OPTIONS, MergeConfig, default_config, load_config
from merger.frames import FrameInfo, check_frame_sizes, collect_frames
from merger.pipeline import output_paths, run_merge
from merger.session import legacy_session_path, load_session, new_session, session_path
from merger.xseg_masks import LazyMasker, Masker, XSegNeed, needs_xseg

CPU_ENV = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}  # compositing workers never touch a GPU
CORES = max(1, os.cpu_count() or 1)

# DFL's questions before merging. Not asked without a terminal: batch mode, default_worker_count() workers.
INTERACTIVE_OPTION = Option(
    "interactive", True, "Open the interactive merger window (asked on a terminal unless --config or a merge "
    "setting flag chooses batch mode; never without a terminal).", "Use interactive merger?", "bool", switch=True,
    negative_help="Batch merge without a window: one setting for all frames.")
WORKERS_OPTION = Option(
    "workers", default_worker_count(), "Compositing worker processes, from 1 to the number of CPU cores; asked in "
    "batch mode on a terminal.", "Number of workers?", "int", valid_range=(1, CORES),
    default_text=f"one per core, at most 8: {default_worker_count()} here")
DFM_FACE_TYPE_OPTION = Option(
    "dfm_face_type", None, "Face type a .dfm model was trained on, for files that do not say (DFL's exports); "
    "a file that says (ours) is merged with its own. Asked on a terminal when needed.", "Face type of the .dfm model",
    choices=SHORT_NAMES, normalize=lambda text: FaceType.from_string(text).short_name or text, argparse_choices=True,
    default_text="the file's, else asked on a terminal, else wf (DeepFaceLive's whole face)")
RUN_OPTIONS = (INTERACTIVE_OPTION, WORKERS_OPTION, DFM_FACE_TYPE_OPTION)
DFM_CLASS = "DFM"  # `--model DFM`, and the class part of a .dfm's merger session name


def ask_settings(base: MergeConfig) -> MergeConfig:
    """DFL's console questions, once for all frames (batch mode with a terminal): each setting's prompt,
    range or choices and help come from its declaration in merger.config.MERGE_OPTIONS."""
    return base.replace(**resolve(MERGE_OPTIONS, base.to_dict(), {}, ask_overrides=True))


def check_xseg_model(folder: Path, needed_by: str) -> None:
    """An XSeg mask mode needs a trained XSeg model in `folder`: a UserError naming the folder when it has
    none (cheap: no model code is imported). `needed_by` says which mode asks for it."""
    from models.model_files import find_models
    hint = f"needed by {needed_by}; train one with `train --model XSeg` or give --xseg-model-dir"
    if not folder.is_dir():
        raise UserError(f"XSeg model folder not found ({hint})", folder)
    if not find_models(folder, "XSeg"):
        raise UserError(f"no trained XSeg model in this folder ({hint})", folder)


def load_xseg_model(folder: Path, needed_by: str) -> Masker:
    """The XSeg model of `folder` (the most recently saved), checked first by check_xseg_model."""
    check_xseg_model(folder, needed_by)
    from models.xseg import load_xseg  # the model code is heavy: only when an XSeg mode is used
    masker = load_xseg(folder)
    log.info(f"XSeg model {getattr(masker, 'name', '?')!r} ({masker.resolution} px) from {folder}")
    return masker


def xseg_needed(mask_mode: str, infos: list[FrameInfo]) -> bool:
    """Whether merging `infos` with `mask_mode` runs the XSeg model: XSeg-prd always (it masks the predicted
    face), XSeg-dst only for a face without a baked mask (a baked one, from `xseg apply`, is used instead)."""
    need = XSegNeed.of([mask_mode])
    if need.prd:
        return True
    return need.dst and any(info.baked_mask(j) is None for info in infos for j in range(len(info.landmarks)))


def dfm_file(model_dir: str | Path, model_class: str | None, model_name: str | None) -> Path | None:
    """The .dfm to merge with: `model_dir` itself when it names a .dfm file (then --model and
    --force-model-name are not needed, and ignored with a note), one of the folder's .dfm files with
    `--model DFM`; None for a model folder of another class."""
    path = Path(model_dir)
    if path.suffix.lower() == ".dfm":
        if model_class and model_class != DFM_CLASS:
            log.info(f"--model {model_class} is ignored: {path.name} is a .dfm file, which says what it holds")
        if model_name and model_name != path.stem:
            log.info(f"--force-model-name {model_name} is ignored: the model is the file {path.name}")
        return path
    return choose_dfm(path, model_name) if model_class == DFM_CLASS else None


def choose_dfm(folder: Path, forced: str | None) -> Path:
    """`--model DFM`: the folder's .dfm named by --force-model-name, else the only one, else a menu on a
    terminal, else the most recently saved (and says which)."""
    if not folder.is_dir():
        raise UserError("model folder not found", folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".dfm" and p.is_file()),
                   key=lambda p: (-p.stat().st_mtime, p.name))
    names = ", ".join(p.name for p in files)
    if forced:
        match = [p for p in files if p.stem == forced]
        if not match:
            raise UserError(f"no {forced}.dfm in this folder" + (f" (it holds {names})" if files else ""), folder)
        return match[0]
    if not files:
        raise UserError("no .dfm file in this folder (give --model-dir path/to/model.dfm, or export one with "
                        "exportdfm)", folder)
    from models.loader import choose_newest_or_ask
    return files[choose_newest_or_ask([p.stem for p in files], folder, ".dfm files", "Choose one of the .dfm models.")]


def load_dfm(path: Path, face_type: str | None = None):
    """The .dfm as a FacePredictor (models.dfm_predictor); the face type is the file's, else `face_type`
    (--dfm-face-type), else asked on a terminal, else DeepFaceLive's whole face."""
    from models.dfm_contract import DFL_DEFAULT_FACE_TYPE
    from models.dfm_predictor import load_dfm_predictor  # onnxruntime: imported only for a .dfm

    def ask() -> FaceType:
        return FaceType.from_string(DFM_FACE_TYPE_OPTION.ask(DFL_DEFAULT_FACE_TYPE))
    given = FaceType.from_string(face_type) if face_type else None
    return load_dfm_predictor(path, given, ask if interact.is_interactive() else None)


def _stale_outputs(infos: list[FrameInfo], output_dir: Path) -> int:
    names = {f"{i.path.stem}.png" for i in infos}
    return sum(1 for p in output_dir.glob("*.png") if p.name not in names)


@contextlib.contextmanager
def claim_outputs(output_dir: str | Path, mask_dir: str | Path, infos: list[FrameInfo]) -> Iterator[tuple[Path, Path]]:
    """Create the output folders and hold them for this run: one writer per folder (a second merge
    into them stops with the holder's pid), then clear what a killed merge left of these frames."""
    out, mask = ensure_writable_dir(output_dir), ensure_writable_dir(mask_dir)
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys((out.resolve(), mask.resolve())):  # one lock when both are one folder
            stack.enter_context(FolderLock(folder, "merge"))
        names = [f"{i.path.stem}.png" for i in infos]
        stale = [p for folder in dict.fromkeys((out.resolve(), mask.resolve()))
                 for p in remove_stale_partials(folder, names)]
        if stale:
            log.info(f"Removed {len(stale)} unfinished file(s) left by an interrupted merge (e.g. {stale[0].name})")
        yield out, mask


def merge(input_dir: str, output_dir: str, output_mask_dir: str, aligned_dir: str | None, model_dir: str,
          model_class: str | None, config_path: str | None = None, interactive: bool | None = None,
          workers: int | None = None, debug: bool = False, predictor=None, model_name: str | None = None,
          settings: Mapping[str, Any] | None = None, xseg_model_dir: str | None = None, xseg: Masker | None = None) -> int:
    """Merge every frame of `input_dir`; returns the number of frames written.

    `model_name` picks one of several models of `model_class` in `model_dir` (else: a menu on a
    terminal, the most recently saved without one). `predictor` (a models.predictor.FacePredictor)
    skips loading the model; its session is then `model_name`'s (default "new", train's default name).
    `settings`: the command line's flags (key -> value or the flag's text): merger settings, applied on
    top of the defaults or `config_path`'s values, and RUN_OPTIONS (--interactive, --workers 1..cores),
    which replace `interactive` and `workers`; a bad one is a UserError naming its flag. `interactive` and
    `workers` are for callers in Python (workers=0 composites in this process). Left out, both are asked
    on a terminal (DFL's questions), else batch mode with default_worker_count() workers.
    The XSeg mask modes use the XSeg model of `xseg_model_dir` (default: `model_dir`, where DFL keeps it),
    loaded only when a chosen mask mode needs it (XSeg-dst: only for faces without a baked mask); `xseg` (a
    merger.xseg_masks.Masker) skips loading it. A `model_dir` naming a .dfm file (or `model_class` "DFM": a
    .dfm of the folder, `model_name` its stem) merges with that file through onnxruntime; `settings`'
    dfm_face_type is its face type when the file does not say.
    Every input is checked before the output folders are created.
    """
    flags = parse_flags(MERGE_OPTIONS, settings or {})  # a bad flag is an error before anything is read
    run = parse_flags(RUN_OPTIONS, settings or {})
    interactive, workers = run.get("interactive", interactive), run.get("workers", workers)
    if aligned_dir is None:
        raise UserError("--aligned-dir is required: the merger takes each face's landmarks from the aligned dst faces")
    infos = collect_frames(input_dir, aligned_dir)
    width, height = check_frame_sizes(infos)
    with_faces = sum(1 for i in infos if i.landmarks)
    log.info(f"{len(infos)} frames of {width}x{height}, {with_faces} with faces to merge")

    if interactive is None:
        interactive = _ask_interactive(batch_chosen=config_path is not None or bool(flags))
    if interactive:
        _require_display()
    dfm = dfm_file(model_dir, model_class, model_name) if predictor is None else None
    if dfm is not None:  # its session and default XSeg folder: beside the file
        model_dir, model_class, model_name = str(dfm.parent), DFM_CLASS, dfm.stem
    elif predictor is None:
        if not model_class:
            raise UserError("--model is required (the model class: Quick96, SAEHD ..., or DFM for a .dfm in the "
                            "folder) unless --model-dir is a .dfm file", model_dir)
        from models.loader import choose_saved_model  # light: the model code itself is imported on loading
        model_name = choose_saved_model(Path(model_dir), model_class, model_name)
    else:
        model_name = model_name or getattr(getattr(predictor, "files", None), "name", None) or "new"
    if dfm is None and run.get("dfm_face_type"):
        log.info("--dfm-face-type is ignored: the model is not a .dfm file (its own options say its face type)")
    chosen = load_config(config_path) if config_path is not None else None  # a bad file: an error before any write
    xseg_dir = Path(xseg_model_dir or model_dir)
    mask_mode = flags.get("mask_mode") or (chosen.mask_mode if chosen else None)
    if not interactive and xseg is None and mask_mode and xseg_needed(mask_mode, infos):
        check_xseg_model(xseg_dir, f"mask mode {mask_mode}")  # before the output folders are made
    if dfm is not None:  # onnxruntime only, and checked on a face: a broken file stops before any output
        predictor = load_dfm(dfm, run.get("dfm_face_type"))

    with claim_outputs(output_dir, output_mask_dir, infos) as (out_dir, mask_dir):
        if predictor is None:
            from models.loader import load_predictor  # the model code is heavy: import only when merging
            predictor = load_predictor(Path(model_dir), model_class, model_name)
            log.info(f"Model {model_name!r} ({model_class}) at iteration {int(getattr(predictor, 'iteration', 0))}")
        return _merge_into(infos, predictor, out_dir, mask_dir, Path(model_dir), model_class, model_name,
                           input_dir, config_path, interactive, workers, debug, flags, xseg_dir, xseg)


def _merge_into(infos: list[FrameInfo], predictor, out_dir: Path, mask_dir: Path, model_dir: Path, model_class: str,
                model_name: str, input_dir: str, config_path: str | None, interactive: bool, workers: int | None,
                debug: bool, flags: Mapping[str, Any] | None = None, xseg_dir: Path | None = None,
                xseg: Masker | None = None) -> int:
    xseg_dir = xseg_dir or model_dir
    base = default_config(getattr(predictor, "default_mode", None), getattr(predictor, "default_mask_mode", None))
    cfg = load_config(config_path, base) if config_path is not None else None
    if flags:  # the command line wins over the config file
        cfg = (cfg or base).replace(**flags)

    if interactive:
        def load_xseg() -> Masker:
            return xseg if xseg is not None else load_xseg_model(xseg_dir, "the XSeg mask modes")
        return _interactive(infos, predictor, cfg or base, model_dir, model_class, model_name, out_dir, mask_dir,
                            LazyMasker(load_xseg))

    if cfg is None:
        cfg = ask_settings(base) if interact.is_interactive() else base
    if xseg is None and xseg_needed(cfg.mask_mode, infos):
        xseg = load_xseg_model(xseg_dir, f"mask mode {cfg.mask_mode}")  # before any frame is written
    elif xseg is None and needs_xseg(cfg.mask_mode):
        log.info(f"{cfg.mask_mode}: every face has a baked XSeg mask (xseg apply), so no XSeg model is loaded")
    if workers is None:  # the prompt on a terminal, else the default (said in the log)
        workers = WORKERS_OPTION.ask(WORKERS_OPTION.default)
    stale = _stale_outputs(infos, out_dir)
    if stale:
        log.warning(f"{out_dir}: {stale} PNG file(s) there are not frames of {input_dir} (left as they are)")
    log.info("Settings for all frames:\n" + cfg.describe(bool(getattr(predictor, "has_morph", False))))
    summary = run_merge(infos, cfg, predictor, out_dir, mask_dir, workers=workers, debug=debug,
                        worker_envs=[CPU_ENV], xseg=xseg if needs_xseg(cfg.mask_mode) else None)
    if summary.failed:
        name, why = summary.failed[0]
        raise UserError(f"{len(summary.failed)} of {len(infos)} frames could not be merged (first: {name}: {why})", out_dir)
    log.info(f"Merged {summary.merged} frames into {out_dir} (masks in {mask_dir})")
    return summary.merged


def _ask_interactive(batch_chosen: bool) -> bool:
    """DFL's first question, asked only on a terminal and only when neither --config nor a setting flag
    chose batch mode: scripts never wait on a prompt or a window."""
    if batch_chosen:
        return False
    if not interact.is_interactive():
        log.info("stdin is not a terminal: merging in batch mode with the default settings "
                 "(give --config merge.json to choose them)")
        return False
    return INTERACTIVE_OPTION.ask(INTERACTIVE_OPTION.default)


def _require_display() -> None:
    from core.display import display_problem
    problem = display_problem()
    if problem is not None:
        raise UserError(f"the interactive merger needs a display ({problem}); "
                        "merge with --no-interactive or --config merge.json instead")


def _interactive(infos: list[FrameInfo], predictor, cfg: MergeConfig, model_dir: Path, model_class: str,
                 model_name: str, out_dir: Path, mask_dir: Path, xseg: LazyMasker | None = None) -> int:
    from merger.window import run_window  # opens a display: imported only for interactive runs

    names = [i.path.name for i in infos]
    path = session_path(model_dir, model_class, model_name)
    remove_stale_partials(model_dir, [path.name])
    legacy = legacy_session_path(model_dir, model_class)
    if legacy.exists() and not path.exists():
        log.info(f"{legacy}: a session of an older version, not used (it does not say which model it is for); "
                 f"this model's session is {path.name}")
    iteration = int(getattr(predictor, "iteration", 0))
    session = None
    if path.exists() and interact.ask_bool("Use saved session?", True):
        session = load_session(path, names, iteration, cfg)
    if session is None:
        session = new_session(path, names, iteration, cfg)
    else:
        for k, info in enumerate(infos):  # outputs deleted since: merge those frames again
            out, mask = output_paths(info.path, out_dir, mask_dir)
            if session.done[k] and not (out.exists() and mask.exists()):
                session.done[k] = False
        remaining = session.remaining
        if remaining:
            session.current = min(session.current, remaining[0])
        log.info(f"Saved session: {len(infos) - len(remaining)} of {len(infos)} frames merged")
    run_window(infos, predictor, session, out_dir, mask_dir, xseg=xseg)
    done = len(infos) - len(session.remaining)
    log.info(f"Session saved to {path}: {done} of {len(infos)} frames merged")
    return done
