"""Issue 11 (hardening) for extract, clear-workspace, videoed debris and --cpu-only: re-extracting
never destroys files we did not write, a full disk ends a run with the file named, interrupted
encodes leave no debris behind the next run, clearing the workspace never happens unasked, and every
command that computes takes the device flags."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.fileio import atomic_path
from faceset.face_file import read_face_meta
from tests.conftest import FACES, REPO, run_cli
from tests.facesets import extract_faces, make_faceset, make_frames

SCRIPTS = REPO / "scripts"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _extract_cli(frames: Path, out: Path, *extra: str):
    return run_cli("extract", "--input-dir", str(frames), "--output-dir", str(out), "--detector", "centerface",
                   "--workers", "0", "--face-type", "wf", "--image-size", "128", "--jpeg-quality", "90",
                   "--max-faces-from-image", "0", *extra)


def _faces(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg") if read_face_meta(p) is not None)


def _disk_full(path) -> None:
    """What a write on a full disk does: the temporary file fails with ENOSPC."""
    with atomic_path(path) as tmp:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))


# --- 1. extract --force / --resume touch only our faces ----------------------------------------------

@pytest.mark.slow
def test_force_moves_old_faces_to_trash_and_leaves_other_files_alone(tmp_path):
    make_frames("obama.jpg", tmp_path / "frames", count=2)
    out, debug = tmp_path / "aligned", tmp_path / "aligned_debug"
    assert _extract_cli(tmp_path / "frames", out, "--output-debug").returncode == 0
    old = {p.name: p.read_bytes() for p in out.glob("*.jpg")}
    assert sorted(old) == ["00001_0.jpg", "00002_0.jpg"]
    theirs = {out / "holiday.jpg": (FACES / "biden.jpg").read_bytes(),
              out / "00001_7.jpg": (FACES / "grace_hopper.jpg").read_bytes(),  # named like a face, is not one
              out / "notes.txt": b"my notes",
              debug / "my_frame.jpg": (FACES / "biden.jpg").read_bytes()}
    for path, data in theirs.items():
        path.write_bytes(data)

    res = _extract_cli(tmp_path / "frames", out, "--output-debug", "--force")
    assert res.returncode == 0, res.stderr
    for path, data in theirs.items():
        assert path.read_bytes() == data, f"{path} was touched"
    trashed = list((tmp_path / "aligned_trash").glob("*/*.jpg"))
    assert {p.name: p.read_bytes() for p in trashed} == old  # moved whole, not deleted
    assert _faces(out) == ["00001_0.jpg", "00002_0.jpg"]
    assert sorted(p.name for p in debug.glob("*.jpg")) == ["00001.jpg", "00002.jpg", "my_frame.jpg"]
    assert "left alone" in res.stderr and "aligned_trash" in res.stderr

    # A resumed run redoes unfinished frames without deleting a look-alike file of the user's.
    journal = out / ".extract_journal.jsonl"
    journal.write_text(journal.read_text().splitlines()[1] + "\n")  # frame 1 unfinished
    res = _extract_cli(tmp_path / "frames", out, "--resume")
    assert res.returncode == 0, res.stderr
    assert (out / "00001_7.jpg").read_bytes() == theirs[out / "00001_7.jpg"]
    assert _faces(out) == ["00001_0.jpg", "00002_0.jpg"]


# --- 2. a full disk ends the run, names the file, and the journal stays true -----------------------

@pytest.mark.parametrize("which", ["face", "debug"])
def test_disk_full_ends_extract_naming_the_file_and_journals_only_written_frames(tmp_path, monkeypatch, which):
    import core.image_io
    import faceset.face_file
    from mainscripts import extractor

    make_frames("obama.jpg", tmp_path / "frames", count=3)
    out = tmp_path / "aligned"
    module, full_name = ((faceset.face_file, "00002_0.jpg") if which == "face" else (core.image_io, "00002.jpg"))
    real = module.atomic_write_bytes

    def write(path, data):
        if Path(path).name == full_name:
            _disk_full(path)
        real(path, data)

    monkeypatch.setattr(module, "atomic_write_bytes", write)
    settings = extractor.ExtractSettings(detector="centerface", face_type="wf", max_faces=0, image_size=128,
                                         jpeg_quality=90, output_debug=True, workers=0, resume=True)
    with pytest.raises(UserError) as err:
        extractor.extract(str(tmp_path / "frames"), str(out), settings)
    assert full_name in str(err.value) and "the disk is full" in str(err.value)
    done = extractor.Journal(out).done_frames()
    assert "00001.png" in done and "00002.png" not in done

    monkeypatch.setattr(module, "atomic_write_bytes", real)  # space freed: resume finishes the job
    stats = extractor.extract(str(tmp_path / "frames"), str(out), settings)
    assert stats["faces"] == 3 and _faces(out) == ["00001_0.jpg", "00002_0.jpg", "00003_0.jpg"]
    assert sorted(extractor.Journal(out).done_frames()) == ["00001.png", "00002.png", "00003.png"]


def test_util_restore_on_a_full_disk_names_the_face_and_keeps_it(tmp_path, monkeypatch):
    from mainscripts import util

    faces = extract_faces(make_frames("obama.jpg", tmp_path / "frames", count=2), tmp_path / "aligned", size=64)
    util.run_util(tmp_path / "aligned", save_metadata=True)
    before = faces[0].read_bytes()
    real = util.atomic_write_bytes

    def write(path, data):
        if Path(path).name == faces[0].name:
            _disk_full(path)
        real(path, data)

    monkeypatch.setattr(util, "atomic_write_bytes", write)
    with pytest.raises(UserError) as err:
        util.run_util(tmp_path / "aligned", restore_metadata=True)
    assert faces[0].name in str(err.value) and "the disk is full" in str(err.value)
    assert faces[0].read_bytes() == before  # not re-encoded behind the failed write's back
    assert (tmp_path / "aligned" / util.METADATA_NAME).exists()


# --- 3. interrupted encodes: the next run removes its own stale partials, only those ------------------

def test_videoed_removes_its_own_stale_partials_only(face_video, tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    make_frames("obama.jpg", tmp_path / "frames", count=3)
    stale = [tmp_path / f"result.partial-{dead}-a1b2c3.mp4", tmp_path / "result.partial-x9y8z7.mp4"]
    kept = [tmp_path / f"result.partial-{alive}-a1b2c3.mp4", tmp_path / f"other.partial-{dead}-a1b2c3.mp4",
            tmp_path / f"result_mask.partial-{dead}-a1b2c3.mp4"]
    for p in stale + kept:
        p.write_bytes(b"\0" * 4096)
    res = run_cli("videoed", "video-from-sequence", "--input-dir", str(tmp_path / "frames"),
                  "--output-file", str(tmp_path / "result.mp4"), "--fps", "10", "--bitrate", "1")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "result.mp4").is_file()
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in kept)

    clip = tmp_path / "clip.mp4"
    shutil.copy(face_video.path, clip)
    cut_stale, cut_live = tmp_path / f"clip_cut.partial-{dead}-q1w2e3.mp4", tmp_path / f"clip_cut.partial-{alive}-q1.mp4"
    for p in (cut_stale, cut_live):
        p.write_bytes(b"\0" * 4096)
    res = run_cli("videoed", "cut-video", "--input-file", str(clip), "--from-time", "0", "--to-time", "0.4",
                  "--audio-track-id", "0", "--bitrate", "1")
    assert res.returncode == 0, res.stderr
    assert not cut_stale.exists() and cut_live.exists() and (tmp_path / "clip_cut.mp4").is_file()

    frames = tmp_path / "video_frames"
    staged = {name: frames / name for name in (f".extract.partial-{dead}-abcd1234", ".extract.partial-abcd1234",
                                               f".extract.partial-{alive}-abcd1234")}
    for folder in staged.values():
        folder.mkdir(parents=True)
        shutil.copy(FACES / "obama.jpg", folder / "00001.jpg")
    res = run_cli("videoed", "extract-video", "--input-file", str(face_video.path), "--output-dir", str(frames),
                  "--fps", "5", "--output-ext", "jpg")
    assert res.returncode == 0, res.stderr
    assert len(list(frames.glob("*.jpg"))) == 10
    assert sorted(p.name for p in staged.values() if p.exists()) == [f".extract.partial-{alive}-abcd1234"]


# --- 4. clear workspace: never without a yes ---------------------------------------------------------

def _workspace(ws: Path) -> dict[Path, bytes]:
    files = {ws / "data_src.mp4": b"src video", ws / "data_dst.mp4": b"dst video", ws / "result.mp4": b"result",
             ws / "data_src" / "00001.png": b"frame", ws / "data_src" / "aligned" / "00001_0.jpg": b"face",
             ws / "data_dst" / "aligned_debug" / "00001.jpg": b"debug", ws / "model" / "me_SAEHD_state.npz": b"weeks"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _clear_script(ws: Path, *args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKSPACE=str(ws), PYTHONUNBUFFERED="1")
    return subprocess.run(["bash", str(SCRIPTS / "1_clear_workspace.sh"), *args], env=env, stdin=stdin,
                          capture_output=True, text=True, timeout=120)


def test_clear_workspace_without_a_terminal_needs_yes(tmp_path):
    ws = tmp_path / "my ws"
    files = _workspace(ws)
    proc = _clear_script(ws)
    assert proc.returncode != 0
    assert "--yes" in proc.stderr and "Traceback" not in proc.stderr
    assert all(path.read_bytes() == data for path, data in files.items())  # nothing deleted

    from core.folder_lock import FolderLock
    with FolderLock(ws / "model", "train"):  # a model in training is never deleted under it
        proc = _clear_script(ws, "--yes")
        assert proc.returncode != 0 and "in use" in proc.stderr
    assert all(path.read_bytes() == data for path, data in files.items())

    proc = _clear_script(ws, "--yes")
    assert proc.returncode == 0, proc.stderr
    found = sorted(str(p.relative_to(ws)) for p in ws.rglob("*"))
    assert found == ["data_dst", "data_dst.mp4", "data_dst/aligned", "data_src", "data_src.mp4", "data_src/aligned",
                     "model", "result.mp4"]


def test_clear_workspace_asks_in_a_terminal(tmp_path):
    import pty
    ws = tmp_path / "ws"
    files = _workspace(ws)
    for answer, cleared in ((b"n\n", False), (b"y\n", True)):
        main_fd, terminal = pty.openpty()
        try:
            os.write(main_fd, answer)
            proc = _clear_script(ws, stdin=terminal)
        finally:
            os.close(main_fd)
            os.close(terminal)
        assert proc.returncode == 0, proc.stderr
        assert "[n] Delete" in proc.stdout
        assert (ws / "model" / "me_SAEHD_state.npz").exists() != cleared
    assert (ws / "data_src" / "aligned").is_dir() and (ws / "data_dst.mp4").read_bytes() == files[ws / "data_dst.mp4"]


# --- 5. --cpu-only and --force-gpu-idxs for extract and evaluate -------------------------------------

def test_extract_cpu_only_passes_the_choice_to_its_workers(tmp_path, monkeypatch):
    make_frames("obama.jpg", tmp_path / "frames", count=1)
    res = _extract_cli(tmp_path / "frames", tmp_path / "aligned", "--cpu-only")
    assert res.returncode == 0, res.stderr
    assert _faces(tmp_path / "aligned") == ["00001_0.jpg"]
    res = _extract_cli(tmp_path / "frames", tmp_path / "aligned", "--force-gpu-idxs", "x")
    assert res.returncode == 1 and "--force-gpu-idxs" in res.stderr

    from core.devices import DeviceChoice
    from mainscripts import extract_stages, extractor
    envs = []
    real = extract_stages.run_pool

    def spy(factory, items, **kw):
        envs.append(kw.get("worker_envs"))
        return real(factory, items, **{**kw, "workers": 0})

    monkeypatch.setattr(extract_stages, "run_pool", spy)
    extractor.extract(str(tmp_path / "frames"), str(tmp_path / "aligned2"), extractor.ExtractSettings(
        detector="centerface", face_type="wf", max_faces=0, image_size=128, jpeg_quality=90, output_debug=False,
        workers=2), device=DeviceChoice(cpu_only=True))
    assert envs and all(e == [DeviceChoice(cpu_only=True).env()] for e in envs)
    assert envs[0][0]["CUDA_VISIBLE_DEVICES"] == "-1"


def test_evaluate_accepts_cpu_only(tmp_path):
    ws = tmp_path / "ws"
    frames = make_frames("biden.jpg", ws / "data_dst", count=2, seed=3)
    extract_faces(frames, ws / "data_dst" / "aligned", size=64)
    make_faceset(["obama.jpg"], ws / "data_src", per_photo=1, size=64)
    (ws / "data_dst" / "merged").mkdir()
    for f in frames:
        shutil.copy(f, ws / "data_dst" / "merged" / f.name)
    res = run_cli("evaluate", "--workspace", str(ws), "--cpu-only")
    assert res.returncode == 0, res.stderr
    assert (ws / "evaluation.json").exists()


def test_demo_passes_the_device_flags_to_every_computing_step(tmp_path, monkeypatch):
    from mainscripts import demo
    commands = []

    def run(cmd, **kw):
        commands.append(cmd[2:])
        return subprocess.CompletedProcess(cmd, 0)

    class Info:
        width, height, fps, has_audio = 640, 480, 25.0, True

    monkeypatch.setattr(demo, "_ensure_video", lambda *a, **k: None)
    monkeypatch.setattr(demo.subprocess, "run", run)
    monkeypatch.setattr(demo, "probe", lambda path: Info())
    demo.run_demo(str(tmp_path / "ws"), 4, device_args=["--cpu-only"])
    for cmd in commands:
        assert ("--cpu-only" in cmd) == (cmd[0] in ("extract", "train", "merge", "evaluate")), cmd
    assert {c[0] for c in commands} == {"videoed", "extract", "train", "merge", "evaluate"}
