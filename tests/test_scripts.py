"""The numbered scripts (scripts/): every `.sh` run in workflow order on a workspace made from two
real-face videos, and every `.bat` checked to call main.py exactly like its `.sh` twin (CI has no
Windows, so the `.bat` files are compared at the level of their argument lists)."""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from core.synth_video import make_video_from_photo
from core.video import ffmpeg_exe, probe
from faceset.face_file import load_aligned_face, read_face_meta
from tests.conftest import FACES, REPO
from tests.xseg_script_checks import XSegChecks

SCRIPTS = REPO / "scripts"

# The one mapping table: DFL's Windows name -> the Linux name, in the order a user runs them.
PAIRS: list[tuple[str, str]] = [
    ("1) clear workspace", "1_clear_workspace"),
    ("2) extract images from video data_src", "2_extract_images_from_video_data_src"),
    ("3) cut video (drop video on me)", "3_cut_video_drop_video_on_me"),
    ("3) extract images from video data_dst FULL FPS", "3_extract_images_from_video_data_dst_FULL_FPS"),
    ("3.optional) denoise data_dst images", "3.optional_denoise_data_dst_images"),
    ("4) data_src faceset extract", "4_data_src_faceset_extract"),
    ("4) data_src faceset extract MANUAL", "4_data_src_faceset_extract_MANUAL"),
    ("4.1) data_src view aligned result", "4.1_data_src_view_aligned_result"),
    ("4.2) data_src sort", "4.2_data_src_sort"),
    ("4.2) data_src util add landmarks debug images", "4.2_data_src_util_add_landmarks_debug_images"),
    ("4.2) data_src util faceset metadata save", "4.2_data_src_util_faceset_metadata_save"),
    ("4.2) data_src util faceset metadata restore", "4.2_data_src_util_faceset_metadata_restore"),
    ("4.2) data_src util faceset pack", "4.2_data_src_util_faceset_pack"),
    ("4.2) data_src util faceset unpack", "4.2_data_src_util_faceset_unpack"),
    ("4.2) data_src util faceset resize", "4.2_data_src_util_faceset_resize"),
    ("4.2) data_src util recover original filename", "4.2_data_src_util_recover_original_filename"),
    ("4.3) import DFL model", "4.3_import_DFL_model"),
    ("5) data_dst faceset extract", "5_data_dst_faceset_extract"),
    ("5) data_dst faceset extract MANUAL", "5_data_dst_faceset_extract_MANUAL"),
    ("5) data_dst faceset extract + manual fix", "5_data_dst_faceset_extract_manual_fix"),
    ("5) data_dst faceset MANUAL RE-EXTRACT DELETED ALIGNED_DEBUG", "5_data_dst_faceset_MANUAL_RE-EXTRACT_DELETED_ALIGNED_DEBUG"),
    ("5.1) data_dst view aligned results", "5.1_data_dst_view_aligned_results"),
    ("5.1) data_dst view aligned_debug results", "5.1_data_dst_view_aligned_debug_results"),
    ("5.2) data_dst sort", "5.2_data_dst_sort"),
    ("5.2) data_dst util faceset pack", "5.2_data_dst_util_faceset_pack"),
    ("5.2) data_dst util faceset unpack", "5.2_data_dst_util_faceset_unpack"),
    ("5.2) data_dst util faceset resize", "5.2_data_dst_util_faceset_resize"),
    ("5.2) data_dst util recover original filename", "5.2_data_dst_util_recover_original_filename"),
    ("5.XSeg) data_dst mask - edit", "5.XSeg_data_dst_mask_edit"),
    ("5.XSeg) data_dst mask - fetch", "5.XSeg_data_dst_mask_fetch"),
    ("5.XSeg) data_dst mask - remove", "5.XSeg_data_dst_mask_remove"),
    ("5.XSeg) data_src mask - edit", "5.XSeg_data_src_mask_edit"),
    ("5.XSeg) data_src mask - fetch", "5.XSeg_data_src_mask_fetch"),
    ("5.XSeg) data_src mask - remove", "5.XSeg_data_src_mask_remove"),
    ("5.XSeg) train", "5.XSeg_train"),
    ("5.XSeg.optional) trained mask data_dst - apply", "5.XSeg.optional_trained_mask_data_dst_apply"),
    ("5.XSeg.optional) trained mask data_dst - remove", "5.XSeg.optional_trained_mask_data_dst_remove"),
    ("5.XSeg.optional) trained mask data_src - apply", "5.XSeg.optional_trained_mask_data_src_apply"),
    ("5.XSeg.optional) trained mask data_src - remove", "5.XSeg.optional_trained_mask_data_src_remove"),
    ("5.XSeg.generic) data_dst whole faceset generic mask", "5.XSeg.generic_data_dst_whole_faceset_generic_mask"),
    ("5.XSeg.generic) data_src whole faceset generic mask", "5.XSeg.generic_data_src_whole_faceset_generic_mask"),
    ("6) train Quick96", "6_train_Quick96"),
    ("6) train SAEHD", "6_train_SAEHD"),
    ("6) train AMP", "6_train_AMP"),
    ("6) train Original", "6_train_Original"),
    ("6) train Reenact", "6_train_Reenact"),
    ("6) export SAEHD as dfm", "6_export_SAEHD_as_dfm"),
    ("6) export AMP as dfm", "6_export_AMP_as_dfm"),
    ("7) merge Quick96", "7_merge_Quick96"),
    ("7) merge SAEHD", "7_merge_SAEHD"),
    ("7) merge AMP", "7_merge_AMP"),
    ("7) merge Original", "7_merge_Original"),
    ("7) merge Reenact", "7_merge_Reenact"),
    ("7) merge DFM", "7_merge_DFM"),
    ("8) merged to mp4", "8_merged_to_mp4"),
    ("8) merged to mp4 lossless", "8_merged_to_mp4_lossless"),
    ("8) merged to mov lossless", "8_merged_to_mov_lossless"),
    ("8) merged to avi", "8_merged_to_avi"),
    ("9) live", "9_live"),
]
# The folder viewers open a window of the desktop's own (tests/test_reextract.py runs them with a stand-in
# xdg-open); live needs a camera.
VIEWERS = {"4.1_data_src_view_aligned_result", "5.1_data_dst_view_aligned_results",
           "5.1_data_dst_view_aligned_debug_results"}
NEEDS_A_PERSON = {"4_data_src_faceset_extract_MANUAL", "5_data_dst_faceset_extract_MANUAL",
                  "5_data_dst_faceset_MANUAL_RE-EXTRACT_DELETED_ALIGNED_DEBUG",
                  "5.XSeg_data_dst_mask_edit", "5.XSeg_data_src_mask_edit", "9_live"} | VIEWERS
HELPERS = {"_env", "_venv", "_view", "setup_and_demo", "setup_and_test"}  # not numbered scripts
# Scripts that run the command of a script run here, with another model or folder: the twin test below checks
# their command lines, and the models' own tests train them (tests/test_amp.py, test_original.py,
# test_reenact.py, test_export.py). Running them here too cost about 5 minutes of the suite's 2-core budget.
SAME_COMMAND_AS_ONE_RUN_HERE = {"6_train_AMP", "6_train_Original", "6_train_Reenact", "6_export_AMP_as_dfm",
                                "7_merge_AMP", "7_merge_Original", "7_merge_Reenact",
                                "5.XSeg.generic_data_src_whole_faceset_generic_mask"}

FPS, SECONDS, SIZE = 10, 1.2, (320, 240)
N_FRAMES = 12  # SECONDS * FPS
FRAME_NAMES = [f"{i:05d}.png" for i in range(1, N_FRAMES + 1)]
ORIGINAL_FACE_NAMES = sorted(f"{i:05d}_0.jpg" for i in range(1, N_FRAMES + 1))
SORTED_FACE_NAMES = [f"{i:05d}.jpg" for i in range(N_FRAMES)]
TRAIN_ARGS = ["--no-preview", "--silent-start", "--target-iteration", "2"]
XSEG_ARGS = ["--resolution", "64", "--dims", "4", "--batch-size", "2"]  # DFL's 256 px XSeg costs a minute here
SAEHD_ARGS = ["--resolution", "32", "--archi", "df-ud", "--ae-dims", "32", "--e-dims", "16", "--d-dims", "16",
              "--d-mask-dims", "8", "--batch-size", "2"]


# --- workspace checks, one per script ---------------------------------------------------------------

def digest(folder: Path, pattern: str = "*.png") -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.glob(pattern))}


def face_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg"))


def video_streams(path: Path) -> str:
    """ffmpeg's description of the file's streams (pixel format, audio)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return "\n".join(line for line in out.stderr.splitlines() if "Stream #" in line)


def check_video(path: Path, pix_fmt: str, audio: bool) -> None:
    info = probe(path)
    assert (info.width, info.height, float(info.fps)) == (*SIZE, FPS), path
    assert info.count_frames() == N_FRAMES, path
    assert info.has_audio == audio, path
    assert pix_fmt in video_streams(path), (path, video_streams(path))


def check_faces(folder: Path, names: list[str], size: int) -> None:
    assert face_names(folder) == names
    for p in folder.glob("*.jpg"):
        image, meta = load_aligned_face(p)
        assert meta is not None and image.shape[:2] == (size, size), p


class Checks(XSegChecks):
    """What each script must leave in the workspace (and snapshots the next check compares with)."""

    def __init__(self, ws: Path):
        self.ws = ws
        self.seen: dict[str, dict] = {}

    def videos(self) -> dict[str, bytes]:
        return {name: (self.ws / name).read_bytes() for name in ("data_src.mp4", "data_dst.mp4")}

    def before_1_clear_workspace(self) -> None:
        for stale in ("data_src/00001.png", "data_src/aligned/00001_0.jpg", "data_dst/aligned_debug/x.jpg",
                      "model/old_SAEHD_state.npz"):
            (self.ws / stale).parent.mkdir(parents=True, exist_ok=True)
            (self.ws / stale).write_bytes(b"stale")
        self.seen["videos"] = self.videos()

    def after_1_clear_workspace(self) -> None:
        assert self.videos() == self.seen["videos"]  # the videos stay, untouched
        for folder in ("data_src/aligned", "data_dst/aligned", "model"):
            assert (self.ws / folder).is_dir(), folder
        found = sorted(str(p.relative_to(self.ws)) for p in self.ws.rglob("*") if p.is_file())
        assert found == ["data_dst.mp4", "data_src.mp4"]

    def after_2_extract_images_from_video_data_src(self) -> None:
        assert sorted(p.name for p in (self.ws / "data_src").glob("*.*")) == FRAME_NAMES
        assert cv2.imread(str(self.ws / "data_src" / "00001.png")).shape == (SIZE[1], SIZE[0], 3)

    def after_3_cut_video_drop_video_on_me(self) -> None:  # run with the dst video and --to-time 0.6
        cut = probe(self.ws / "data_dst_cut.mp4")
        assert cut.count_frames() == 6 and cut.has_audio
        assert self.videos() == self.seen["videos"]

    def after_3_extract_images_from_video_data_dst_FULL_FPS(self) -> None:
        assert sorted(p.name for p in (self.ws / "data_dst").glob("*.*")) == FRAME_NAMES
        self.seen["dst frames"] = digest(self.ws / "data_dst")

    def after_3_optional_denoise_data_dst_images(self) -> None:
        denoised = digest(self.ws / "data_dst")
        assert denoised.keys() == self.seen["dst frames"].keys()
        changed = [name for name in denoised if denoised[name] != self.seen["dst frames"][name]]
        assert len(changed) == N_FRAMES, "the denoiser left frames unchanged"
        self.seen["dst frames"] = denoised

    def after_4_data_src_faceset_extract(self) -> None:
        check_faces(self.ws / "data_src/aligned", ORIGINAL_FACE_NAMES, 512)

    def after_4_2_data_src_sort(self) -> None:
        check_faces(self.ws / "data_src/aligned", SORTED_FACE_NAMES, 512)

    def after_4_2_data_src_util_add_landmarks_debug_images(self) -> None:
        debug = sorted(p.name for p in (self.ws / "data_src/aligned_landmarks_debug").iterdir())
        assert debug == [n.replace(".jpg", "_debug.jpg") for n in SORTED_FACE_NAMES]

    def after_4_2_data_src_util_faceset_metadata_save(self) -> None:
        assert (self.ws / "data_src/aligned/faceset_metadata.json").is_file()
        # The user edits a face in a program that drops the metadata and halves the image.
        face = self.ws / "data_src/aligned/00000.jpg"
        image = cv2.imread(str(face))
        cv2.imwrite(str(face), cv2.resize(image, (256, 256)))
        assert read_face_meta(face) is None

    def after_4_2_data_src_util_faceset_metadata_restore(self) -> None:
        check_faces(self.ws / "data_src/aligned", SORTED_FACE_NAMES, 512)

    def after_4_2_data_src_util_faceset_pack(self) -> None:
        assert face_names(self.ws / "data_src/aligned") == []
        assert (self.ws / "data_src/aligned/faceset.pak").is_file()

    def after_4_2_data_src_util_faceset_unpack(self) -> None:
        check_faces(self.ws / "data_src/aligned", SORTED_FACE_NAMES, 512)
        assert not (self.ws / "data_src/aligned/faceset.pak").exists()

    def after_4_2_data_src_util_faceset_resize(self) -> None:  # run with --image-size 256
        check_faces(self.ws / "data_src/aligned", SORTED_FACE_NAMES, 256)

    def after_4_2_data_src_util_recover_original_filename(self) -> None:
        check_faces(self.ws / "data_src/aligned", ORIGINAL_FACE_NAMES, 256)

    def after_4_3_import_DFL_model(self) -> None:  # run on DFL's own fixture model, into model_dfl
        assert [p.name for p in (self.ws / "model_dfl").glob("*_state.npz")] == ["saehd_liae-ud_64_SAEHD_state.npz"]

    def after_5_data_dst_faceset_extract(self) -> None:
        check_faces(self.ws / "data_dst/aligned", ORIGINAL_FACE_NAMES, 512)
        assert sorted(p.name for p in (self.ws / "data_dst/aligned_debug").iterdir()) == \
            [n.replace(".png", ".jpg") for n in FRAME_NAMES]

    def after_5_data_dst_faceset_extract_manual_fix(self) -> None:  # run with --force: extracts again
        check_faces(self.ws / "data_dst/aligned", ORIGINAL_FACE_NAMES, 512)
        assert len(list((self.ws / "data_dst/aligned_debug").iterdir())) == N_FRAMES

    def after_5_2_data_dst_sort(self) -> None:
        check_faces(self.ws / "data_dst/aligned", SORTED_FACE_NAMES, 512)

    def after_5_2_data_dst_util_faceset_pack(self) -> None:
        assert face_names(self.ws / "data_dst/aligned") == []
        assert (self.ws / "data_dst/aligned/faceset.pak").is_file()

    def after_5_2_data_dst_util_faceset_unpack(self) -> None:
        check_faces(self.ws / "data_dst/aligned", SORTED_FACE_NAMES, 512)

    def after_5_2_data_dst_util_faceset_resize(self) -> None:  # run with --image-size 256
        check_faces(self.ws / "data_dst/aligned", SORTED_FACE_NAMES, 256)

    def after_5_2_data_dst_util_recover_original_filename(self) -> None:
        check_faces(self.ws / "data_dst/aligned", ORIGINAL_FACE_NAMES, 256)

    def after_6_train_Quick96(self) -> None:
        assert [p.name for p in (self.ws / "model").glob("*_Quick96_state.npz")] == ["new_Quick96_state.npz"]
        assert len(list((self.ws / "model").glob("*_XSeg_state.npz"))) == 1  # the XSeg model stays beside it

    def after_6_train_SAEHD(self) -> None:
        assert len(list((self.ws / "model").glob("*_SAEHD_state.npz"))) == 1

    def after_6_export_SAEHD_as_dfm(self) -> None:
        assert (self.ws / "model" / "saehd_SAEHD.dfm").stat().st_size > 0

    def _check_merged(self) -> dict[str, str]:
        merged = digest(self.ws / "data_dst/merged")
        assert sorted(merged) == FRAME_NAMES
        assert sorted(digest(self.ws / "data_dst/merged_mask")) == FRAME_NAMES
        assert cv2.imread(str(self.ws / "data_dst/merged/00001.png")).shape == (SIZE[1], SIZE[0], 3)
        assert all(merged[n] != self.seen["dst frames"][n] for n in FRAME_NAMES), "a frame was not merged"
        return merged

    def after_7_merge_Quick96(self) -> None:
        self.seen["Quick96 merged"] = self._check_merged()

    def after_7_merge_SAEHD(self) -> None:
        merged = self._check_merged()
        assert all(merged[n] != self.seen["Quick96 merged"][n] for n in FRAME_NAMES), "SAEHD did not merge"

    def after_7_merge_DFM(self) -> None:
        self._check_merged()

    def after_8_merged_to_mp4(self) -> None:
        check_video(self.ws / "result.mp4", "yuv420p", audio=True)
        check_video(self.ws / "result_mask.mp4", "yuv444p", audio=False)

    def after_8_merged_to_mp4_lossless(self) -> None:
        check_video(self.ws / "result.mp4", "yuv444p", audio=True)
        check_video(self.ws / "result_mask.mp4", "yuv444p", audio=False)

    def after_8_merged_to_mov_lossless(self) -> None:
        check_video(self.ws / "result.mov", "yuv444p", audio=True)
        check_video(self.ws / "result_mask.mov", "yuv444p", audio=False)

    def after_8_merged_to_avi(self) -> None:
        check_video(self.ws / "result.avi", "yuv420p", audio=True)
        check_video(self.ws / "result_mask.avi", "yuv444p", audio=False)


def make_workspace(ws: Path) -> None:
    """Two short videos of different real people; only the destination has sound (440 Hz)."""
    from mainscripts.demo import head_and_shoulders
    ws.mkdir(parents=True)
    for name, photo, audio, seed in (("data_src.mp4", "obama.jpg", None, 1), ("data_dst.mp4", "biden.jpg", 440.0, 2)):
        make_video_from_photo(FACES / photo, ws / name, seconds=SECONDS, fps=FPS, frame_size=SIZE,
                              audio_hz=audio, seed=seed, focus=head_and_shoulders(FACES / photo))


def script_env(ws: Path) -> dict[str, str]:
    env = dict(os.environ, WORKSPACE=str(ws), PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)  # a script that wrongly opens a window fails instead of waiting for a person
    return env


@pytest.fixture
def spaced_repo(tmp_path) -> Path:
    """The repository seen through a path with a space, so the scripts' own paths have one too."""
    link = tmp_path / "my repo"
    link.symlink_to(REPO, target_is_directory=True)
    return link


@pytest.mark.slow
def test_the_workflow_scripts_run_in_order(tmp_path, spaced_repo):
    ws = tmp_path / "my workspace"
    make_workspace(ws)
    checks = Checks(ws)
    args = {
        "1_clear_workspace": ["--yes"],  # no terminal to ask on: deleting needs an explicit yes
        "3_cut_video_drop_video_on_me": [str(ws / "data_dst.mp4"), "--to-time", "0.6"],
        "4.2_data_src_util_faceset_resize": ["--image-size", "256"],
        "4.3_import_DFL_model": ["--input-dir", str(REPO.parent / "shared/dfl-fixtures/saehd_liae-ud_64"),
                                 "--model-dir", str(ws / "model_dfl")],  # model/ gets Quick96 and SAEHD later
        "5_data_dst_faceset_extract_manual_fix": ["--force"],
        "5.2_data_dst_util_faceset_resize": ["--image-size", "256"],
        "5.XSeg_data_dst_mask_remove": ["--yes"],
        "5.XSeg_data_src_mask_remove": ["--yes"],
        "5.XSeg_train": TRAIN_ARGS + XSEG_ARGS,
        "5.XSeg.generic_data_dst_whole_faceset_generic_mask": TRAIN_ARGS,
        # model/ holds the XSeg model by now, beside which an unattended Quick96 run starts 'new' (as DFL)
        "6_train_Quick96": TRAIN_ARGS,
        # model/ holds Quick96 'new' by now: an unattended first SAEHD run there must name its model
        "6_train_SAEHD": TRAIN_ARGS + SAEHD_ARGS + ["--force-model-name", "saehd"],
    }
    elsewhere = tmp_path / "elsewhere"  # the scripts must not depend on the current folder
    elsewhere.mkdir()
    for _, sh in PAIRS:
        if sh in NEEDS_A_PERSON or sh in SAME_COMMAND_AS_ONE_RUN_HERE:
            continue
        method = sh.replace(".", "_")
        after = getattr(checks, f"after_{method}", None)
        assert after is not None, f"no check for {sh}.sh"
        getattr(checks, f"before_{method}", lambda: None)()
        proc = subprocess.run(["bash", str(spaced_repo / "scripts" / f"{sh}.sh"), *args.get(sh, [])],
                              cwd=elsewhere, env=script_env(ws), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{sh}.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        after()
    shutil.rmtree(ws / "model")  # ~0.5 GB of weights; pytest keeps the last few temp folders


def test_clear_workspace_asks_first_in_a_terminal(tmp_path):
    ws = tmp_path / "ws"
    (ws / "model").mkdir(parents=True)
    (ws / "model" / "mine_SAEHD_state.npz").write_bytes(b"weeks of training")
    import pty  # Unix only; the parity tests below also run on Windows
    main, terminal = pty.openpty()
    try:
        os.write(main, b"\n")  # Enter: the default answer, no
        proc = subprocess.run(["bash", str(SCRIPTS / "1_clear_workspace.sh")], env=script_env(ws),
                              stdin=terminal, capture_output=True, text=True, timeout=60)
    finally:
        os.close(main)
        os.close(terminal)
    assert proc.returncode == 0, proc.stderr
    assert "Nothing deleted" in proc.stdout + proc.stderr
    assert (ws / "model" / "mine_SAEHD_state.npz").read_bytes() == b"weeks of training"


def test_cut_video_without_a_file_says_what_to_do(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPTS / "3_cut_video_drop_video_on_me.sh")], env=script_env(tmp_path),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "VIDEO" in proc.stderr


# --- .bat <-> .sh parity -----------------------------------------------------------------------------

def _normalise(token: str) -> str:
    """One spelling for both shells: {NAME} for variables, {ARGS} for the pass-through, / for paths."""
    token = token.replace("%*", "{ARGS}").replace("$@", "{ARGS}")
    token = re.sub(r"%(\w+)%", r"{\1}", token)
    token = re.sub(r"\$\{?(\w+)\}?", r"{\1}", token)
    return token.replace("\\", "/")


def _unquoted_variables(raw_tokens: list[str]) -> list[str]:
    """Tokens with a variable (a path that may hold spaces) outside double quotes."""
    return [t for t in raw_tokens if re.search(r"%\w+%|\$\{?\w", t) and not (t.startswith('"') and t.endswith('"'))]


def sh_actions(path: Path) -> list[tuple]:
    """main.py calls and folder removals/creations of a .sh script, normalised."""
    actions = []
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        if "main.py" in line or re.match(r"\s*(rm|mkdir)\b", line):
            raw = shlex.split(line, posix=False)
            assert not _unquoted_variables(raw), f"{path.name}: unquoted {_unquoted_variables(raw)}"
            tokens = [_normalise(t.strip('"')) for t in raw]
            if tokens[0] == "rm":
                actions.append(("remove", tokens[-1]))
            elif tokens[0] == "mkdir":
                actions.append(("create", tokens[-1]))
            else:
                i = next(k for k, t in enumerate(tokens) if t.endswith("main.py"))
                actions.append(("run", *tokens[i - 1:]))
    return actions


def bat_actions(path: Path) -> list[tuple]:
    """The same for a .bat script, read the way cmd splits a line (quotes group, ^ continues)."""
    actions = []
    text = path.read_bytes().decode().replace("\r\n", "\n").replace("^\n", " ")
    for line in text.splitlines():
        if re.match(r"\s*(@?rem\b|::)", line, re.I):
            continue
        line = re.sub(r"^\s*if not errorlevel 1\s+", "", line, flags=re.I)
        line = re.sub(r'^\s*if exist "[^"]*"\s+', "", line, flags=re.I)
        if "main.py" in line or re.match(r"\s*(rmdir|mkdir)\b", line, re.I):
            raw = [t for t in re.findall(r'(?:"[^"]*"|[^\s"])+', line) if not re.match(r"\d?>", t)]
            assert not _unquoted_variables(raw), f"{path.name}: unquoted {_unquoted_variables(raw)}"
            tokens = [_normalise(t.replace('"', "")) for t in raw]
            if tokens[0].lower() == "rmdir":
                actions.append(("remove", tokens[-1]))
            elif tokens[0].lower() == "mkdir":
                actions.append(("create", tokens[-1]))
            else:
                i = next(k for k, t in enumerate(tokens) if t.endswith("main.py"))
                actions.append(("run", *tokens[i - 1:]))
    return actions


def test_every_script_has_its_twin():
    numbered = {p.stem for p in SCRIPTS.glob("*.bat")} - HELPERS, {p.stem for p in SCRIPTS.glob("*.sh")} - HELPERS
    assert numbered[0] == {bat for bat, _ in PAIRS}
    assert numbered[1] == {sh for _, sh in PAIRS}


@pytest.mark.parametrize("bat,sh", PAIRS, ids=[sh for _, sh in PAIRS])
def test_bat_does_what_its_sh_twin_does(bat, sh):
    sh_path, bat_path = SCRIPTS / f"{sh}.sh", SCRIPTS / f"{bat}.bat"
    if sh in VIEWERS:  # no main.py: both open the same workspace folder with the desktop's viewer
        folder = re.search(r'FOLDER="\$WORKSPACE/([^"]+)"', sh_path.read_text()).group(1)
        assert f'set "FOLDER=%WORKSPACE%\\{folder.replace("/", chr(92))}"' in bat_path.read_text(), folder
        return
    expected = sh_actions(sh_path)
    assert expected, f"{sh}.sh does nothing"
    assert bat_actions(bat_path) == expected
    # Every call runs the repo's venv python on main.py, with the user's extra arguments passed through
    # (a script that chains another command after its main one, e.g. train then xseg apply, passes
    # them to the main one only).
    runs = [action for action in expected if action[0] == "run"]
    for action in runs:
        assert action[1:3] == ("{VENV_PY}", "{REPO_ROOT}/main.py"), action
        assert action[-1] == "{ARGS}" or (action is not runs[0] and action[3] != runs[0][3]), action
    assert runs[0][-1] == "{ARGS}", runs[0]

    sh_text = sh_path.read_text()
    assert sh_text.startswith("#!/usr/bin/env bash\n")
    assert 'source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"' in sh_text
    assert os.access(sh_path, os.X_OK)

    raw = bat_path.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n"), "cmd wants CRLF line ends"
    lines = [line.strip() for line in raw.decode().splitlines() if line.strip()]
    assert lines[0] == "@echo off"
    assert 'call "%~dp0_env.bat"' in lines[lines.index("setlocal") + 1]
    assert "pause" in lines[-2:], "the window must stay open at the end"


def test_workspace_defaults_to_the_repos_and_can_be_overridden(tmp_path):
    probe_ws = 'source "$1/_env.sh"; printf "%s" "$WORKSPACE"'
    env = script_env(tmp_path)
    env.pop("WORKSPACE")
    default = subprocess.run(["bash", "-c", probe_ws, "-", str(SCRIPTS)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert default.returncode == 0 and Path(default.stdout) == REPO / "workspace"
    chosen = subprocess.run(["bash", "-c", probe_ws, "-", str(SCRIPTS)], env=script_env(tmp_path / "a b"),
                            capture_output=True, text=True, timeout=60)
    assert chosen.stdout == str(tmp_path / "a b")
    bat = (SCRIPTS / "_env.bat").read_text()
    assert '"%~dp0_venv.bat" requirements.txt' in bat
    assert 'if not defined WORKSPACE set "WORKSPACE=%REPO_ROOT%\\workspace"' in bat
