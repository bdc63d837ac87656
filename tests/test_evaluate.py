"""`evaluate`: the metrics read a merged workspace and mean what they say."""
from __future__ import annotations

import json
import re
import shutil

from tests.conftest import run_cli
from tests.facesets import extract_faces, make_faceset, make_frames


def _value(stdout: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)}: (-?\d+\.\d+)", stdout, flags=re.M)
    assert m, f"no line starting with {name!r} in:\n{stdout}"
    return float(m.group(1))


def test_an_unchanged_merge_scores_as_the_dst_face(tmp_path):
    ws = tmp_path / "ws"
    frames = make_frames("biden.jpg", ws / "data_dst", count=6, seed=3)
    extract_faces(frames, ws / "data_dst" / "aligned", size=128)
    make_faceset(["obama.jpg"], ws / "data_src", per_photo=3, size=128)
    (ws / "data_dst" / "merged").mkdir()
    for f in frames:  # a "merge" that changed nothing
        shutil.copy(f, ws / "data_dst" / "merged" / f.name)

    res = run_cli("evaluate", "--workspace", str(ws))
    assert res.returncode == 0, res.stderr
    assert _value(res.stdout, "identity similarity to dst") == 1.0
    to_src = _value(res.stdout, "identity similarity to src")
    assert to_src < 0.5  # Biden is not Obama: the dst face is far from the src identity
    assert _value(res.stdout, "landmark error vs dst") == 0.0
    jitter = _value(res.stdout, "face jitter")
    report = json.loads((ws / "evaluation.json").read_text())
    assert report["frames"] == 6 and report["face_jitter"] == report["dst_face_jitter"] > 0
    assert abs(jitter - report["face_jitter"]) < 0.01


def test_evaluate_without_a_merge_says_what_is_missing(tmp_path):
    (tmp_path / "data_dst").mkdir()
    res = run_cli("evaluate", "--workspace", str(tmp_path))
    assert res.returncode == 1 and len(res.error_lines) == 1 and "merged" in res.error_lines[0]
