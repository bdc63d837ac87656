"""`train`: pick or create a model, feed it batches from background workers, show progress, save.

Training runs in a worker thread; the main thread owns the OpenCV preview window (or, with
--no-preview, waits for Ctrl+C). They talk through queues, as in DFL.
"""
from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import interact, log
from core import keras_backend as kb
from core.errors import UserError
from core.fileio import ensure_writable_dir
from core.folder_lock import FolderLock
from core.settings import never
from mainscripts.train_window import Console, console_line

AUTOSAVE_MINUTES = 25
PREVIEW_ROWS_MAX = 4


@dataclass
class TrainSettings:
    src_dir: Path
    dst_dir: Path
    model_dir: Path
    model: str
    pretraining_dir: Path | None = None
    force_model_name: str | None = None
    no_preview: bool = False
    silent_start: bool = False
    target_iteration: int = 0
    precision: str = "auto"
    jit: bool | None = None
    autosave_minutes: float = AUTOSAVE_MINUTES
    workers: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # from the option flags


# --- the training thread ------------------------------------------------------------------------

class TrainingSession:
    """Owns the model and the batch streams; runs iterations and reacts to commands from the window."""

    def __init__(self, model: Any, src_stream: Any, dst_stream: Any, preview_faces: tuple[Any, Any],
                 settings: TrainSettings, console: Console):
        self.model, self.src, self.dst = model, src_stream, dst_stream
        self.preview_faces = preview_faces
        self.s = settings
        self.console = console
        self.commands: queue.Queue[str] = queue.Queue()
        self.previews: queue.Queue[dict[str, np.ndarray]] = queue.Queue()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.reached_target = False
        # Nobody can press Enter in the window without a terminal either (scripts): the target ends the run.
        self.stop_at_target = settings.no_preview or not interact.is_interactive()
        self._saved_at_iter = model.iteration
        self._last_save = time.monotonic()
        self._last_backup = time.monotonic()
        self.step_seconds: list[float] = []

    # preview images ---------------------------------------------------------------------------------
    def make_previews(self) -> dict[str, np.ndarray]:
        from models.preview import preview_rows
        src, dst = self.preview_faces
        if hasattr(self.model, "preview_images"):  # a model with its own layout (XSeg: face, target, mask)
            return self.model.preview_images(src, dst)
        out = self.model.preview_outputs(src.target, dst.target)
        name = self.model.CLASS_NAME
        return {name: preview_rows(src.target, dst.target, out, src.mask, dst.mask, masked=False),
                f"{name} masked": preview_rows(src.target, dst.target, out, src.mask, dst.mask, masked=True)}

    def push_previews(self) -> None:
        if not self.s.no_preview:
            self.previews.put(self.make_previews())

    def write_history_preview(self) -> None:
        """<model>_history/<preview>/<iteration>.jpg and _last.jpg, each with the loss graph on top."""
        from core.image_io import write_image
        from models.preview import loss_graph
        for name, img in self.make_previews().items():
            folder = self.model.files.history_dir / name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            framed = np.concatenate([loss_graph(self.model.loss_history, img.shape[1]), img], axis=0)
            write_image(folder / f"{self.model.iteration:07d}.jpg", framed)
            write_image(folder / "_last.jpg", framed)

    # saving -------------------------------------------------------------------------------------------
    def save(self, reason: str = "") -> None:
        started = time.monotonic()
        self.model.save()
        means = self.model.loss_means_since(self._saved_at_iter)
        self._saved_at_iter = self.model.iteration
        self._last_save = time.monotonic()
        hours = float(self.model.options.get("autobackup_hour", 0) or 0)
        if hours and time.monotonic() - self._last_backup >= hours * 3600:
            self.backup()
        loss_text = "".join(f"[{v:.4f}]" for v in means)
        self.console.message(f"[{time.strftime('%H:%M:%S')}][#{self.model.iteration:06d}] Saved{reason} "
                             f"in {time.monotonic() - started:.1f}s; mean loss since last save {loss_text}")

    def backup(self) -> None:
        folder = self.model.files.backup()
        self._last_backup = time.monotonic()
        self.console.message(f"Backed up the model to {folder}")

    # the loop -----------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # reported by the main thread
            self.error = e
        finally:
            self.done.set()

    def _loop(self) -> None:
        model, s = self.model, self.s
        history_every = 10 * max(1, model.resolution // 64)
        write_history = bool(model.options.get("write_preview_history"))
        self.push_previews()
        if s.target_iteration and model.iteration >= s.target_iteration:
            self.console.message(f"Model is already at iteration {model.iteration} (target {s.target_iteration}).")
            self.reached_target = True
            if self.stop_at_target:
                return
        while True:
            cmd = self._next_command(block=self.reached_target)
            if cmd == "exit":
                if not self.reached_target:
                    self.save()
                return
            if cmd == "save":
                self.save()
            elif cmd == "backup":
                self.save()
                self.backup()
            elif cmd == "preview":
                self.push_previews()
            if self.reached_target:
                continue
            src, dst = self.src.next(), self.dst.next()
            t0 = time.perf_counter()
            losses = model.train_step(src, dst)
            took = time.perf_counter() - t0
            if losses is None:  # collapsed and rolled back
                self.push_previews()
                continue
            self.step_seconds.append(took)
            # While the guard has the loss flagged as exploding, its verdict (a rollback, or a hard batch
            # passing) comes within a few iterations: autosaves and the target wait for it.
            settled = not model.guard.exploding
            at_target = bool(s.target_iteration) and model.iteration >= s.target_iteration and settled
            self.console.progress(console_line(model.iteration, took, losses), force=at_target or model.iteration == 1)
            if write_history and model.iteration % history_every == 0:
                self.write_history_preview()
            if settled and (model.iteration == 1 or time.monotonic() - self._last_save >= s.autosave_minutes * 60):
                self.save()
                self.push_previews()
            if at_target:
                self.save(" (target iteration reached)")
                self.push_previews()
                self.reached_target = True
                if self.stop_at_target:
                    return
                self.console.message("Target iteration reached: the preview stays open; press Enter in it to exit.")

    def _next_command(self, block: bool) -> str | None:
        try:
            return self.commands.get(timeout=0.2) if block else self.commands.get_nowait()
        except queue.Empty:
            return None


# --- entry point ----------------------------------------------------------------------------------

@dataclass
class ModelPlan:
    """The model `train` will open, decided without writing anything: class, files, saved state, options."""
    cls: Any
    files: Any  # models.model_files.ModelFiles
    state: Any  # models.model_files.SavedState, None for a new model
    saved: dict[str, Any] | None  # the saved options, checked
    options: dict[str, Any]  # this run's options (unknown saved keys kept, unused)

    @property
    def effective(self) -> dict[str, Any]:
        """The options with the model's fixed configuration applied (Quick96)."""
        return {**self.options, **self.cls.FIXED_OPTIONS}


def _check_flags(s: TrainSettings, cls: Any) -> None:
    """Model option flags are declared per model: one the chosen model does not declare is refused, not
    ignored (Quick96 declares none: its configuration is fixed); a bad value is refused naming its flag."""
    from core.settings import parse_flags, show, unused_flags
    from models.loader import MODEL_NAMES, model_class
    declared = {o.key for o in cls.OPTIONS}
    keys = unused_flags(cls.OPTIONS, s.options)  # each option's flag is --<key with dashes>
    if s.pretraining_dir is not None and "pretrain" not in declared and "pretrain" not in keys:
        keys.append("pretrain")  # --pretraining-data-dir feeds only the pretrain option
    if keys:
        flags = ["--pretraining-data-dir" if k == "pretrain" and k not in s.options else "--" + k.replace("_", "-")
                 for k in keys]
        fixed = [f"{k} {show(cls.FIXED_OPTIONS[k])}" for k in keys if k in cls.FIXED_OPTIONS]
        why = f"its configuration is fixed ({', '.join(fixed)})" if fixed else "it has no such option"
        others = [n for n in MODEL_NAMES if n != cls.CLASS_NAME and set(keys) <= {o.key for o in model_class(n).OPTIONS}]
        one = len(keys) == 1
        raise UserError(f"{', '.join(flags)} {'is not an option' if one else 'are not options'} of {cls.CLASS_NAME}: "
                        f"{why}; leave {'it' if one else 'them'} out"
                        + (f", or train with --model {others[0]}" if others else ""))
    parse_flags(cls.OPTIONS, s.options)


def _plan_model(s: TrainSettings) -> ModelPlan:
    """Class, name, saved state and options, all checked; nothing is created or written here."""
    from core.settings import resolve
    from models.loader import choose_model_name, model_class, saved_options, saved_options_source
    from models.model_files import ModelFiles
    from models.options import unknown_entries

    cls = model_class(s.model)
    _check_flags(s, cls)
    name = choose_model_name(s.model_dir, cls.CLASS_NAME, s.force_model_name, s.silent_start)
    files = ModelFiles(s.model_dir, name, cls.CLASS_NAME)
    state = files.read_state() if files.exists() else None
    saved = saved_options(files, cls, state.meta) if state else None
    askable = any(o.ask_if is not never and not o.first_run_only for o in cls.OPTIONS)  # Quick96: none
    ask = bool(state) and askable and not s.silent_start and interact.enter_pressed_within(
        2, "Press enter in 2 seconds to override model settings.")
    options = resolve(cls.OPTIONS, saved, s.options, ask_overrides=ask,
                      saved_path=saved_options_source(files) if state else None)
    if saved:  # keys this version does not know stay in the file (parse_saved warned about them)
        options.update(unknown_entries(cls.OPTIONS, saved, cls.FIXED_OPTIONS))
    return ModelPlan(cls, files, state, saved, options)


def _open_model(s: TrainSettings, plan: ModelPlan) -> Any:
    """Create the model folder and build (and load) the planned model."""
    cls, files, state, saved, options = plan.cls, plan.files, plan.state, plan.saved, plan.options
    name = files.name
    ensure_writable_dir(s.model_dir)
    devices = kb.setup_data_parallel()
    model = cls(files, options, training=True)
    if devices > 1:
        log.info(f"Data-parallel training on {devices} devices: each batch is split between them")
    if state is not None:
        model.load(state)
        if saved and saved.get("pretrain") and not options.get("pretrain"):
            _end_pretraining(model)
    log.info(f"Model {name!r} ({cls.CLASS_NAME}) at iteration {model.iteration}, backend {kb.backend_name()}, "
             f"precision {kb.precision_name()}")
    return model


def _end_pretraining(model: Any) -> None:
    """DFL: switching pretraining off restarts the count and re-initialises the inter layers."""
    from models.autoencoder import reinit_net
    for name in ("inter", "inter_AB", "inter_B"):
        if name in model.nets:
            reinit_net(model.nets[name])
    model.iteration = 0
    model.loss_history = model.loss_history[:0]
    model.preview_samples = {}
    log.info("Pretraining is off: the iteration count restarts at 0 and the inter layers are re-initialised")


def _load_sets(s: TrainSettings, plan: ModelPlan) -> tuple[list, list]:
    """The src and dst faces (the pretraining faces for both when pretraining), checked against the
    model's face type."""
    from facelib.face_type import FaceType
    from models.sample_set import check_face_type
    src, dst = _read_sets(s, bool(plan.effective.get("pretrain")))
    face_type = FaceType.from_string(plan.effective["face_type"])
    check_face_type(src, face_type)
    check_face_type(dst, face_type)
    return src, dst


def _read_sets(s: TrainSettings, pretrain: bool) -> tuple[list, list]:
    from models.sample_set import load_faceset
    if pretrain:
        if s.pretraining_dir is None:
            raise UserError("pretraining is on: give --pretraining-data-dir (a folder of aligned faces)")
        faces = load_faceset(s.pretraining_dir)
        return faces, faces
    return load_faceset(s.src_dir), load_faceset(s.dst_dir)


def _preview_faces(model: Any, src_faces: list, dst_faces: list, specs: tuple[Any, Any]) -> tuple[Any, Any]:
    """The fixed preview samples: kept in the model's state so the preview compares like with like."""
    from models.augment import Batch, preview_batch
    n = min(PREVIEW_ROWS_MAX, model.batch_size, max(1, 800 // model.resolution), len(src_faces), len(dst_faces))
    stored = model.preview_samples
    res = model.resolution
    batches = []
    for side, faces, spec in (("src", src_faces, specs[0]), ("dst", dst_faces, specs[1])):
        # XSeg keeps the faces' hulls too: its generic masks are shown cut to them (XSeg.preview_images)
        keys = [f"{side}_face", f"{side}_mask"] + ([f"{side}_hull"] if spec.target == "xseg" else [])
        shapes = [(res, res, 3), (res, res, 1), (res, res, 1)]  # a model file's arrays are checked, not trusted
        if any(np.shape(stored.get(k))[1:] != shape or len(stored[k]) < n for k, shape in zip(keys, shapes)):
            b = preview_batch(faces, spec, n, seed=model.iteration)
            for key, values in zip(keys, (b.target, b.mask, b.em_mask)):
                stored[key] = (values * 255 + 0.5).astype(np.uint8)
        target = stored[keys[0]][:n].astype(np.float32) / 255
        mask = stored[keys[1]][:n].astype(np.float32) / 255
        em = stored[keys[2]][:n].astype(np.float32) / 255 if len(keys) > 2 else np.zeros_like(mask)
        batches.append(Batch(target, target, mask, em))
    return batches[0], batches[1]


@contextlib.contextmanager
def _model_folder_lock(s: TrainSettings, model: Any):
    """One `train` per model (`<name>_<Class>`), held from before the first save to the end: a second
    run of the same model stops naming the holder, while another model of the folder (an XSeg model
    beside a face model, as DFL keeps them) may train at once. Under the lock, the leftovers of this
    model's interrupted saves are removed."""
    ensure_writable_dir(s.model_dir)
    with FolderLock(s.model_dir, "train", part=model.files.prefix):
        if model.files.changed_since(model.loaded_stat):
            raise UserError("another run saved this model while this one was starting; run train again to "
                            "continue from its save", model.files.state)
        removed = model.files.remove_stale_partials()
        if removed:
            log.info(f"Removed {len(removed)} leftover(s) of interrupted saves: {', '.join(p.name for p in removed)}")
        yield


def _without_display(s: TrainSettings) -> TrainSettings:
    """No usable display (SSH, containers, a dead X server): train without the window, and say so;
    Qt would otherwise abort the process when the window opens."""
    if s.no_preview:
        return s
    from core.display import display_problem
    problem = display_problem()
    if problem is None:
        return s
    log.warning(f"No preview window ({problem}): training without it; Ctrl+C saves and stops.")
    return dataclasses.replace(s, no_preview=True)


def _check_faceset_paths(s: TrainSettings) -> None:
    """A mistyped faceset path is said at once, before Keras loads (seconds): the folders (or pack files)
    training will surely read must exist. Pretraining reads only its own folder, and whether it is on may
    come from the saved options (known later): while a pretraining folder exists, src and dst are left to the
    later checks (a fresh workspace may pretrain before it has facesets; the SAEHD script always passes
    workspace/pretrain_faces). The faces themselves are checked later, by load_faceset."""
    if s.options.get("pretrain") is True:
        paths = [s.pretraining_dir] if s.pretraining_dir is not None else []
    elif s.pretraining_dir is not None and Path(s.pretraining_dir).exists():
        paths = []
    else:
        paths = [s.src_dir, s.dst_dir]
    for path in paths:
        if not Path(path).exists():
            raise UserError("faceset folder not found", path)


def train(s: TrainSettings) -> None:
    _check_faceset_paths(s)
    kb.prepare(s.precision, jit=s.jit)
    from models.batch_stream import BatchStream

    s = _without_display(s)

    plan = _plan_model(s)
    src_faces, dst_faces = _load_sets(s, plan)  # the inputs check out before the model folder is created
    if plan.cls.CLASS_NAME == "XSeg":  # no labels on either side: generic targets, so a generic model
        from models.xseg_samples import settle_generic
        settle_generic(plan.options, s.options, ((s.src_dir, src_faces), (s.dst_dir, dst_faces)))
    model = _open_model(s, plan)
    src_spec, dst_spec = model.sample_specs()
    if src_spec.target == "xseg":  # labelled faces (a side without takes the other's), or generic targets
        from models.xseg_samples import select_faces
        warned: set[str] = set()  # a face on both sides (one faceset for src and dst) is named once
        src_all, dst_all = src_faces, dst_faces
        src_faces, src_spec = select_faces(src_all, src_spec, "src", warned, pool=dst_all)
        dst_faces, dst_spec = select_faces(dst_all, dst_spec, "dst", warned, pool=src_all)
    preview = _preview_faces(model, src_faces, dst_faces, (src_spec, dst_spec))
    console = Console()
    print(model.summary_text(), end="")
    workers = s.workers if s.workers is not None else 1
    devices = kb.data_parallel_devices()
    batch = -(-model.batch_size // devices) * devices  # a multiple of the device count, as DFL rounds it
    if batch != model.batch_size:
        log.info(f"Batch size {model.batch_size} rounded up to {batch} for {devices} devices")
    ct_source = dst_faces if src_spec.ct_mode else None
    with _model_folder_lock(s, model), \
            BatchStream(src_faces, src_spec, batch, workers=workers, ct_source=ct_source) as src_stream, \
            BatchStream(dst_faces, dst_spec, batch, workers=workers) as dst_stream:
        session = TrainingSession(model, src_stream, dst_stream, preview, s, console)
        if s.target_iteration:
            console.message(f"Starting. Target iteration: {s.target_iteration}.")
        else:
            console.message('Starting. Press "Enter" in the preview window to stop training and save model.'
                            if not s.no_preview else "Starting. Press Ctrl+C to stop training and save the model.")
        console.message("Trying to do the first iteration. If an error occurs, reduce the model parameters.")
        thread = threading.Thread(target=session.run, name="trainer", daemon=True)
        thread.start()
        try:
            if s.no_preview:
                while not session.done.wait(0.5):
                    pass
            else:
                from mainscripts.train_window import PreviewWindow
                PreviewWindow(session).run()
        except KeyboardInterrupt:
            console.message("Stopping: saving the model...")
            session.commands.put("exit")
            session.done.wait()
        thread.join()
        waited = (src_stream.wait_fraction + dst_stream.wait_fraction) / 2
    if session.error is not None:
        raise session.error
    if session.step_seconds:
        steps = session.step_seconds[1:] or session.step_seconds
        log.info(f"{len(session.step_seconds)} iterations, median {1000 * float(np.median(steps)):.0f} ms; "
                 f"waited for data {100 * waited:.1f}% of the time")
