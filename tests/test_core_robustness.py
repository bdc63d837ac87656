"""core/: partial-file hygiene, disk-full reporting, folder locks, termination signals, orphaned workers."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import UserError
from core.fileio import atomic_path, atomic_write_bytes, is_partial, remove_stale_partials
from core.folder_lock import FolderLock
from tests.conftest import REPO


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_partials_of_dead_writers_are_removed_and_only_those(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f"m_SAEHD_state.npz.partial-{dead}-abc123"
    legacy = tmp_path / "m_SAEHD_state.partial-x1y2z3ab.npz"  # what older versions left behind
    live = tmp_path / f"m_SAEHD_state.npz.partial-{os.getpid()}-def456"
    other = tmp_path / f"notes.txt.partial-{dead}-zzz"
    face = tmp_path / "00001_0.jpg"
    for p in (stale, legacy, live, other, face):
        p.write_bytes(b"x")
    removed = remove_stale_partials(tmp_path, ["m_SAEHD_state.npz"])
    assert sorted(p.name for p in removed) == sorted([stale.name, legacy.name])
    assert live.exists() and other.exists() and face.exists()
    assert is_partial(live) and not is_partial(face)


def test_partial_video_keeps_its_extension_for_ffmpeg(tmp_path):
    with atomic_path(tmp_path / "result.mp4", keep_suffix=True) as tmp:
        assert tmp.suffix == ".mp4" and is_partial(tmp)
        tmp.write_bytes(b"v")
    assert (tmp_path / "result.mp4").read_bytes() == b"v"


def test_disk_full_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "weights.npz"
    target.write_bytes(b"good")

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError) as info:
        atomic_write_bytes(target, b"new")
    assert info.value.path == target and "disk is full" in str(info.value)
    assert target.read_bytes() == b"good" and os.listdir(tmp_path) == ["weights.npz"]


def test_main_reports_stray_disk_full_oserror_with_its_file(tmp_path):
    import main as main_module
    script = tmp_path / "x"

    def boom(_args):
        raise OSError(errno.ENOSPC, "No space left on device", str(script))

    parser = main_module.build_parser
    try:
        main_module.build_parser = lambda: _FakeParser(boom)
        assert main_module.main([]) == 1
    finally:
        main_module.build_parser = parser


class _FakeParser:
    def __init__(self, func):
        self.func = func

    def parse_args(self, _argv):
        class A:
            pass
        a = A()
        a.func = self.func
        return a


_HOLD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from core.folder_lock import FolderLock
    lock = FolderLock({folder!r}, "train").acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_folder_lock_refuses_a_second_writer_and_names_the_holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD.format(repo=str(REPO), folder=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as info:
            FolderLock(tmp_path, "train").acquire()
        assert f"process {proc.pid}" in str(info.value) and str(tmp_path) in str(info.value)
    finally:
        proc.kill()
        proc.wait()
    # a killed holder does not keep the folder
    with FolderLock(tmp_path, "train"):
        pass
    assert not any(tmp_path.iterdir())


_TERM = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from core.termination import handle_termination_as_interrupt
    handle_termination_as_interrupt()
    try:
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("saved", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signals_run_the_ctrl_c_path(sig):
    proc = subprocess.Popen([sys.executable, "-c", _TERM.format(repo=str(REPO))], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == "saved" and proc.returncode == 0


_POOL_PARENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    import multiprocessing
    from core.workers import run_pool
    from tests.pool_helpers import make_sleepy_worker
    if __name__ == "__main__":
        multiprocessing.set_start_method("spawn", force=True)
        for r in run_pool(make_sleepy_worker, list(range(100)), workers=2, progress=False):
            pass
""")


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process table through ps and /proc")
def test_pool_workers_end_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_POOL_PARENT.format(repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO)
    deadline = time.time() + 60
    children: list[int] = []
    while time.time() < deadline and len(children) < 3:  # resource tracker + 2 workers
        time.sleep(0.5)
        children = _children_of(proc.pid)
    assert len(children) >= 2, children
    proc.kill()
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not [c for c in children if _alive(c)]


def test_sort_removes_the_partial_face_of_a_killed_metadata_write_and_nothing_else(tmp_path):
    from tests.conftest import run_cli
    from tests.facesets import make_faceset
    files = make_faceset(["obama.jpg", "biden.jpg"], tmp_path, per_photo=1, size=96)
    folder = tmp_path / "aligned"
    face = files[0]
    dead = _dead_pid()
    stale = folder / f"{face.name}.partial-{dead}-k1ll3d"
    legacy = folder / f"{face.stem}.partial-ab12cd34{face.suffix}"  # an older version's name
    live = folder / f"{face.name}.partial-{os.getpid()}-busy"
    photo = folder / "holiday.partial.jpg"  # a face file that merely has the word in its name
    for p in (stale, legacy, live, photo):
        p.write_bytes(face.read_bytes())
    result = run_cli("sort", "--input-dir", str(folder), "--by", "blur")
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and not legacy.exists()
    assert live.exists()
    faces = [p for p in folder.iterdir() if p.suffix == ".jpg"]
    assert len(faces) == 3  # the two faces and the user's look-alike file, sorted, none lost


def test_json_files_from_a_shared_folder_are_bounded_and_named(tmp_path):
    from core.fileio import read_json_file
    from merger.config import load_config
    from merger.session import load_session
    from models.model_files import ModelFiles
    deep = "[" * 100000 + "]" * 100000
    files = ModelFiles(tmp_path, "shared", "SAEHD")
    files.options.write_text(deep)
    with pytest.raises(UserError, match="nested too deeply") as info:
        files.read_options()
    assert info.value.path == files.options
    big = tmp_path / "merge.json"
    big.write_text("{" + " " * (2 << 20) + "}")
    with pytest.raises(UserError, match="too large") as info:
        load_config(big)
    assert info.value.path == big
    session = tmp_path / "shared_SAEHD_merger_session.json"
    session.write_text(deep)
    assert load_session(session, ["00001.png"], 0, None) is None  # set aside with a warning, not a crash
    assert not session.exists()
    with pytest.raises(UserError, match="not found"):
        read_json_file(tmp_path / "missing.json", "options file")


def test_json_bytes_are_bounded_and_named():
    from core.fileio import loads_bounded
    assert loads_bounded(b'{"a": [[1]]}', "x.json", max_depth=3) == {"a": [[1]]}  # exactly the bound is fine
    for data, word in ((b'{"a": [[[1]]]}', "nested too deeply"), (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                       (b" " * 300_001, "too large"), (b'"\xff"', "not UTF-8"), (b"{'a': 1}", "not valid JSON")):
        with pytest.raises(UserError, match=word) as info:
            loads_bounded(data, "x.json", "the index", max_bytes=300_000, max_depth=3)
        assert info.value.path == Path("x.json") and info.value.problem.startswith("the index ")


@pytest.mark.parametrize("kind", ["journal", "legacy-pack", "zip-pack"])
def test_json_read_from_a_shared_faceset_is_bounded_in_depth(tmp_path, kind):
    """A journal or pack index nested far past its shape (but within what json.loads survives) is refused."""
    import json
    import struct
    import zipfile

    from core.rename_journal import JOURNAL_NAME, finish_interrupted
    from faceset.pack import INDEX_NAME, PACK_NAME, list_packed
    deep = "[" * 50 + "]" * 50
    folder = tmp_path / "aligned"
    folder.mkdir()
    if kind == "journal":
        path = folder / JOURNAL_NAME
        path.write_text('{"format": "facekit.rename_journal", "phase": "stage", "moves": ' + deep + "}")
        call = lambda: finish_interrupted(folder)  # noqa: E731
    else:
        path = folder / PACK_NAME
        if kind == "legacy-pack":
            raw = json.dumps({"format": "facekit.packed_faceset", "count": 0}).encode()[:-1] + b', "x": ' \
                + deep.encode() + b"}"
            path.write_bytes(b"FACEPAK\0" + struct.pack(">IQ", 1, len(raw)) + raw)
        else:
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(INDEX_NAME, '{"format": "facekit.faceset_pack", "faces": ' + deep + "}")
                zf.writestr("a.jpg", b"\xff\xd8\xff\xd9")
        call = lambda: list_packed(path)  # noqa: E731
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(UserError, match="nested too deeply") as info:
        call()
    assert info.value.path == path and sorted(p.name for p in folder.iterdir()) == before
