"""Shared fixtures: real face photos, short videos synthesised from them, and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
FACES = DATA / "faces"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip().startswith(("Error", "\x1b[31mError"))]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, fresh: bool = False) -> CliResult:
    """Run `python main.py ARGS` the way a user's script does: no terminal on stdin. A call is a fork of
    this worker's CLI zygote (see CliZygote) unless `fresh` (the tests of what a new interpreter prints
    at start-up), TEST_FORK_CLI=0, or an environment the zygote was not started with asks for a new one."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not fresh and os.environ.get("TEST_FORK_CLI", "1") != "0" and CliZygote.suits(env):
        return CliZygote.get().run(list(args), cwd or REPO, env, timeout)
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd or REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


# The zygote's program: import Keras (TensorFlow) and main.py once, then for each request fork a child that
# takes the request's folder, environment and stdio and runs main.main(ARGS) to its exit code, as
# `python main.py ARGS` would (atexit handlers and non-daemon threads included).
_ZYGOTE = r"""
import atexit, json, multiprocessing, os, sys, threading, traceback
req_fd, resp_fd = int(sys.argv[1]), int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
multiprocessing.set_start_method("spawn", force=True)
from core import keras_backend
keras_backend.prepare()
import main

def child(req):
    os.setpgid(0, 0)  # a timeout kills the call's whole process group, its workers too
    os.close(req_fd); os.close(resp_fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, req["out"]), (2, req["err"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.argv = [req["main"], *req["args"]]
    try:
        code = main.main(req["args"])
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush(); sys.stderr.flush()
    finally:
        os._exit(code or 0)

requests = os.fdopen(req_fd, "r")
while True:
    line = requests.readline()
    if not line:
        break
    req = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(req)
    os.write(resp_fd, f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    os.write(resp_fd, f"{os.waitstatus_to_exitcode(status)}\n".encode())
"""


class CliZygote:
    """One per test process: a Python that has imported Keras and main.py, forked for each CLI call.
    Importing TensorFlow costs about 7 s of CPU per `python main.py ...`, and the suite runs about a
    hundred CLI calls that need it: a third of its time on two cores. A fork of an interpreter that has
    only imported (no op has run, no worker pool exists) starts with the state a new one would have."""
    _instance: CliZygote | None = None
    # Variables read when Keras, TensorFlow or Python start: a call that sets them differently needs a new
    # interpreter (PYTHONUNBUFFERED is the runner's own).
    _START_VARS = ("KERAS_", "TF_", "XLA_", "CUDA_", "JAX_", "OMP_", "MKL_", "PYTHON", "LD_")

    def __init__(self) -> None:
        import tempfile
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        self.tmp = Path(tempfile.mkdtemp(prefix="cli_zygote_"))
        self.proc = subprocess.Popen([sys.executable, "-c", _ZYGOTE, str(req_r), str(resp_w), str(REPO)],
                                     pass_fds=(req_r, resp_w), env=self.env, cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.tmp / "zygote.err", "wb"))
        os.close(req_r)
        os.close(resp_w)
        self._pending = b""
        self.calls = 0

    @classmethod
    def suits(cls, env: dict[str, str]) -> bool:
        started = cls._instance.env if cls._instance else dict(os.environ, PYTHONUNBUFFERED="1")
        keys = {k for k in (*env, *started) if k.startswith(cls._START_VARS)}
        return all(env.get(k) == started.get(k) for k in keys)

    @classmethod
    def get(cls) -> CliZygote:
        if cls._instance is None or cls._instance.proc.poll() is not None:
            cls._instance = cls()
            import atexit
            atexit.register(cls._instance.close)
        return cls._instance

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> CliResult:
        import json
        import signal
        self.calls += 1
        out, err = self.tmp / f"{self.calls}.out", self.tmp / f"{self.calls}.err"
        request = {"args": args, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err),
                   "main": str(REPO / "main.py")}
        os.write(self._req_w, (json.dumps(request) + "\n").encode())
        pid = int(self._read_line(None))
        line = self._read_line(timeout)
        if line is None:
            os.killpg(pid, signal.SIGKILL)
            self._read_line(None)
            raise subprocess.TimeoutExpired([sys.executable, "main.py", *args], timeout)
        code = int(line)
        result = CliResult(code, out.read_text(errors="replace"), err.read_text(errors="replace"))
        out.unlink()
        err.unlink()
        return result

    def _read_line(self, timeout: float | None) -> str | None:
        """The zygote's next answer line, or None when `timeout` seconds pass first (unbuffered: the
        answer's two lines may arrive in one read)."""
        import select
        import time
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if ready:
                chunk = os.read(self._resp_r, 4096)
                if not chunk:
                    raise RuntimeError(f"the CLI zygote ended; see {self.tmp / 'zygote.err'}")
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        import shutil
        os.close(self._req_w)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def no_terminal(monkeypatch):
    """Commands in this process never prompt, even when pytest runs with -s in a terminal
    (a module uses it with `pytestmark = pytest.mark.usefixtures("no_terminal")`)."""
    from core import interact
    monkeypatch.setattr(interact, "is_interactive", lambda: False)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """A 2-second 25 fps 320x240 clip of a real face photo in motion, with a 440 Hz audio track."""
    from core.synth_video import make_video_from_photo
    path = tmp_path_factory.mktemp("video") / "face.mp4"
    return make_video_from_photo(FACES / "obama.jpg", path, seconds=2.0, fps=25, frame_size=(320, 240), audio_hz=440.0)


# The `xserver` fixture (a private Xvfb for window tests), available to every test module.
from tests.xserver import xserver  # noqa: E402,F401

# The longest test files (seconds on 2 cores, from --durations) go first: the suite runs on two processes,
# one file per process at a time (--dist loadfile), and a long file that starts last ends the run alone.
LONGEST_FIRST = ("test_scripts.py", "test_train.py", "test_train_robustness.py", "test_train_options.py",
                 "test_demo.py", "test_xseg_model.py", "test_xseg_util.py", "test_dfl_import_xseg.py",
                 "test_xseg_recipe.py", "test_xseg_model_lock.py", "test_merge_xseg.py", "test_export.py",
                 "test_extract.py", "test_reenact.py", "test_amp.py")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
