"""One lock per model, not per folder: an XSeg model and a face model kept in one folder (as DFL keeps
them) train at the same time, two runs of one model still refuse each other naming the holder, and a
command that needs the whole folder refuses while any model in it trains (and the other way round)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import UserError
from core.folder_lock import FolderLock
from tests.conftest import REPO, run_cli

_HOLD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from core.folder_lock import FolderLock
    lock = FolderLock({folder!r}, "train", part={part!r}).acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def _holder(folder: Path, part: str | None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD.format(repo=str(REPO), folder=str(folder), part=part)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_model_lock_leaves_the_folders_other_models_free_and_refuses_its_own_model(tmp_path):
    proc = _holder(tmp_path, "new_XSeg")
    try:
        with FolderLock(tmp_path, "train", part="new_SAEHD"):  # the face model beside it trains
            pass
        with pytest.raises(UserError) as same:
            FolderLock(tmp_path, "train", part="new_XSeg").acquire()
        assert f"in use by process {proc.pid}" in str(same.value)
        assert same.value.path == tmp_path / "new_XSeg"
        with pytest.raises(UserError) as whole:  # import / clear-workspace need the whole folder
            FolderLock(tmp_path, "importdfl").acquire()
        assert f"a model in this folder (new_XSeg) is in use by process {proc.pid}" in str(whole.value)
        assert (tmp_path / ".facekit.lock").read_bytes() == b""  # the model lock's marker, kept for the next look
    finally:
        proc.kill()
        proc.wait()
    with FolderLock(tmp_path, "train", part="new_XSeg"), FolderLock(tmp_path, "train", part="new_SAEHD"):
        pass  # a killed holder keeps nothing
    with FolderLock(tmp_path, "importdfl"):
        pass
    assert not any(tmp_path.iterdir())


def test_clear_workspace_refuses_while_a_model_in_the_model_folder_trains(tmp_path):
    from mainscripts.clear_workspace import clear_workspace
    model = tmp_path / "model"
    model.mkdir()
    (model / "new_XSeg_state.npz").write_bytes(b"weights")
    proc = _holder(model, "new_XSeg")
    try:
        with pytest.raises(UserError) as info:
            clear_workspace(tmp_path, yes=True)
        assert f"(new_XSeg) is in use by process {proc.pid}" in str(info.value)
        assert (model / "new_XSeg_state.npz").read_bytes() == b"weights"
    finally:
        proc.kill()
        proc.wait()
    clear_workspace(tmp_path, yes=True)  # a killed holder keeps nothing
    assert not any((tmp_path / "model").iterdir())


def test_the_whole_folder_lock_refuses_every_model_lock(tmp_path):
    proc = _holder(tmp_path, None)
    try:
        with pytest.raises(UserError) as info:
            FolderLock(tmp_path, "train", part="new_SAEHD").acquire()
        assert f"its folder is in use by process {proc.pid}" in str(info.value)
        assert not (tmp_path / ".facekit.new_SAEHD.lock").exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_part_is_one_file_name_piece(tmp_path):
    for bad in ("", "..", "a/b", "a\\b"):
        with pytest.raises(ValueError):
            FolderLock(tmp_path, "train", part=bad)


# --- through main.py: real training runs ----------------------------------------------------------------

XSEG_TINY = ["--face-type", "wf", "--resolution", "64", "--dims", "4", "--batch-size", "2"]
SAEHD_TINY = ["--resolution", "32", "--archi", "df-ud", "--ae-dims", "32", "--e-dims", "16", "--d-dims", "16",
              "--d-mask-dims", "8", "--batch-size", "2", "--face-type", "f"]


def _train_args(facesets: tuple[Path, Path], model_dir: Path, model: str, *extra: str) -> list[str]:
    return ["train", "--model", model, "--training-data-src-dir", str(facesets[0]), "--training-data-dst-dir",
            str(facesets[1]), "--model-dir", str(model_dir), "--no-preview", "--silent-start", "--sample-workers",
            "0", *(XSEG_TINY if model == "XSeg" else SAEHD_TINY), *extra]


@pytest.mark.slow
def test_xseg_and_saehd_train_at_once_in_one_folder_and_a_second_xseg_run_is_refused(tmp_path):
    from tests.facesets import make_faceset
    make_faceset(["obama.jpg"], tmp_path / "src", per_photo=3, size=64)
    make_faceset(["biden.jpg"], tmp_path / "dst", per_photo=3, size=64)
    facesets = (tmp_path / "src" / "aligned", tmp_path / "dst" / "aligned")
    model_dir = tmp_path / "model"
    log = tmp_path / "xseg.log"
    with open(log, "w") as out:  # the XSeg run goes on until it is stopped
        first = subprocess.Popen([sys.executable, str(REPO / "main.py"), *_train_args(facesets, model_dir, "XSeg")],
                                 cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Starting." not in log.read_text(errors="replace"):
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert (model_dir / ".facekit.new_XSeg.lock").is_file()

        saehd = run_cli(*_train_args(facesets, model_dir, "SAEHD", "--target-iteration", "2"))
        assert saehd.returncode == 0, saehd.stderr[-3000:]
        assert (model_dir / "new_SAEHD_state.npz").is_file()

        second = run_cli(*_train_args(facesets, model_dir, "XSeg", "--target-iteration", "5"))
        assert second.returncode == 1, second.stderr[-3000:]
        assert len(second.error_lines) == 1 and f"this model is in use by process {first.pid}" in second.error_lines[0]
        assert str(model_dir / "new_XSeg") in second.error_lines[0]
        assert first.poll() is None  # the refusal did not disturb the run holding the model
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGTERM)  # saves and stops, as Ctrl+C
        first.wait(timeout=60)
    assert first.returncode == 0, log.read_text()[-3000:]
    assert (model_dir / "new_XSeg_state.npz").is_file()
    assert not list(model_dir.glob(".facekit*.lock"))  # both released
