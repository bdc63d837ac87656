"""Temporal merge (`merge --temporal N`): the smoothing along a track, the merge through the real pipeline with a
stand-in model on a noisy-landmark clip, the setting's plumbing, and `evaluate`'s figures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.temporal_merge import make_clip, merge, merged_figures, standin
from core.color_transfer import apply_stats, average_stats, color_transfer, image_stats
from facelib.swap_metrics import landmark_jitter, mask_edge_flicker
from merger import temporal
from merger.config import MergeConfig, apply_key, load_config, save_config
from merger.frames import FrameInfo

pytestmark = pytest.mark.usefixtures("no_terminal")


# --- smoothing on known signals -----------------------------------------------------------------------

def test_smoothing_removes_noise_keeps_constants_and_ramps_without_lag():
    rng = np.random.default_rng(0)
    t = np.arange(60, dtype=np.float64)
    truth = np.column_stack([3.0 * t + 5.0, np.full_like(t, 7.0)])  # a ramp and a constant
    noisy = truth + rng.normal(0, 1.0, truth.shape)
    smoothed = temporal.smooth_series(noisy, 4)
    assert np.abs(smoothed - truth).std() < 0.6 * np.abs(noisy - truth).std()
    # exact on a noiseless ramp and constant, also at the first and last frames: no lag, no pull at the ends
    np.testing.assert_allclose(temporal.smooth_series(truth, 4), truth, atol=1e-9)
    # radius 0 leaves a sample alone
    np.testing.assert_array_equal(temporal.smooth_series(noisy, [0] * 60), noisy)


def test_a_turning_face_is_smoothed_as_a_turn():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 20, (68, 2))
    truth = []
    for k in range(30):  # turning 2 degrees and moving 3 px per frame
        a = np.radians(2.0 * k)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        truth.append(base @ rot.T + [100 + 3 * k, 80])
    truth = np.asarray(truth)
    noisy = truth + rng.normal(0, 1.5, truth.shape)
    smoothed = temporal.smooth_track_points(noisy, 3)
    assert np.abs(smoothed - truth).mean() < 0.6 * np.abs(noisy - truth).mean()
    np.testing.assert_allclose(temporal.smooth_track_points(truth, 3), truth, atol=0.2)  # no corner cutting


def _info(name: str, lm: np.ndarray, track: int | None) -> FrameInfo:
    return FrameInfo(Path(name), [lm], track_ids=[track])


def test_runs_end_at_cuts_gaps_and_untracked_faces():
    lm = np.zeros((68, 2))
    infos = [_info("00001.png", lm, 0), _info("00002.png", lm, 0), _info("00003.png", lm, 1),  # a cut: new track
             _info("00004.png", lm, 1), _info("00006.png", lm, 1), _info("00007.png", lm, 1),  # 00005 missing
             _info("00008.png", lm, None), _info("00009.png", lm, 1)]
    assert temporal.track_runs(infos) == [[(0, 0), (1, 0)], [(2, 0), (3, 0)], [(4, 0), (5, 0)]]


def test_smoothing_never_crosses_a_cut():
    """Two shots with the face at different places: smoothed, each keeps its own place up to its last frame."""
    rng = np.random.default_rng(2)
    base = rng.normal(0, 20, (68, 2)) + 100
    infos = [_info(f"{k + 1:05d}.png", base + (0 if k < 10 else 150) + rng.normal(0, 0.5, (68, 2)), 0 if k < 10 else 1)
             for k in range(20)]
    out = temporal.smooth_landmarks(infos, lambda k: 5)
    for k in (9, 10):  # the frames either side of the cut
        assert np.abs(out[k].landmarks[0] - infos[k].landmarks[0]).max() < 3.0
    untracked = [_info(i.path.name, i.landmarks[0], None) for i in infos]
    assert all(np.array_equal(a.landmarks[0], b.landmarks[0])
               for a, b in zip(temporal.smooth_landmarks(untracked, lambda k: 5), untracked))


def test_colour_statistics_in_and_out_match_the_one_call_form():
    rng = np.random.default_rng(3)
    src, ref = rng.random((24, 24, 3)).astype(np.float32), (0.3 + 0.4 * rng.random((24, 24, 3))).astype(np.float32)
    mask = np.zeros((24, 24), np.float32)
    mask[4:20, 4:20] = 1
    for mode in ("rct", "lct", "mkl"):
        kw = mask if mode == "rct" else None
        same = apply_stats(mode, src, image_stats(mode, src, kw), average_stats([image_stats(mode, ref, kw)] * 3))
        np.testing.assert_allclose(same, color_transfer(mode, src, ref, mask), atol=1e-6)


# --- the merge through the real pipeline ----------------------------------------------------------------

OUT = {0: "merged_off", 3: "merged"}  # temporal window -> merged folder of the workspace's data_dst


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """A workspace whose data_dst is a 14-frame clip with noisy landmarks, merged with temporal off
    (data_dst/merged_off) and on (data_dst/merged) by the stand-in model in one process."""
    root = tmp_path_factory.mktemp("temporal") / "data_dst"
    clip = make_clip(root, 14, noise=0.02, frame_size=(320, 240))
    predictor = standin(clip, 64)
    figures = {}
    for w, name in OUT.items():
        merge(clip, root / name, MergeConfig(temporal=w), predictor)
        figures[w] = merged_figures(clip, root / name, klt=False)
    return clip, root, figures


def test_temporal_merge_shakes_and_flickers_less(merged):
    clip, root, figures = merged
    off, on = figures[0], figures[3]
    assert on["jitter"] < 0.7 * off["jitter"], figures
    assert on["flicker"] < 0.5 * off["flicker"], figures


def test_untracked_faces_merge_as_before(merged, tmp_path):
    """Faces without a track id: the temporal setting changes nothing (byte-identical frames and masks)."""
    from merger.pipeline import run_merge
    clip, root, _ = merged
    run_merge(clip.infos(track_id=None), MergeConfig(temporal=3), standin(clip, 64), tmp_path / "merged",
              tmp_path / "merged_mask", workers=0, progress=False)
    for p in clip.frames[:4]:
        assert (tmp_path / "merged" / p.name).read_bytes() == (root / "merged_off" / p.name).read_bytes()
        assert (tmp_path / "merged_mask" / p.name).read_bytes() == (root / "merged_off_mask" / p.name).read_bytes()


def test_the_window_shows_what_batch_mode_writes(merged, tmp_path):
    """The interactive merger predicts the track's neighbours itself: its frame equals the batch merge's."""
    from core.image_io import read_image
    from merger.window import FrameMerger
    clip, root, _ = merged
    window = FrameMerger(clip.infos(), standin(clip, 64), tmp_path / "merged", tmp_path / "merged_mask")
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged_mask").mkdir()
    image, _ = window.merge(5, MergeConfig(temporal=3))
    assert np.array_equal(image, read_image(root / OUT[3] / clip.frames[5].name))
    image, _ = window.merge(5, MergeConfig())  # t/g back to 0: the per-frame merge again
    assert np.array_equal(image, read_image(root / OUT[0] / clip.frames[5].name))


def _aligned(clip, folder: Path, track_id: int | None = 0) -> None:
    """Aligned faces as extract writes them (crop, frame landmarks, track id) for the clip's given landmarks."""
    from core.image_io import read_image
    from facelib.crop import CropSpec
    from facelib.face_type import FaceType
    from faceset.face_file import write_aligned_face
    from faceset.meta import FaceMeta
    if folder.is_dir():
        return
    folder.mkdir(parents=True)
    spec = CropSpec(128, FaceType.WHOLE_FACE)
    for p, lm in zip(clip.frames, clip.noisy):
        crop = spec.of(lm)
        write_aligned_face(folder / f"{p.stem}_0.jpg", crop.warp(read_image(p)),
                           FaceMeta(FaceType.WHOLE_FACE, crop.to_face(lm), p.name, source_landmarks=lm,
                                    image_to_face_mat=crop.mat, track_id=track_id))


def test_evaluate_reports_jitter_and_flicker_beside_the_dst_and_other_merges(merged, capsys):
    from mainscripts.evaluate import evaluate
    clip, dst, _ = merged
    ws = dst.parent
    _aligned(clip, dst / "aligned")
    _aligned(clip, ws / "data_src" / "aligned")  # identity figures need a src faceset: any faces do here
    report = evaluate(str(ws), max_frames=10, src_faces=2, compare=[dst / "merged_off"])
    saved = json.loads((ws / "evaluation.json").read_text())
    printed = capsys.readouterr().out
    assert "landmark jitter [merged]: " in printed and "mask edge flicker [merged_off]: " in printed, printed
    print(json.dumps({k: v for k, v in saved.items() if "jitter" in k or "flicker" in k or k == "compared"}))
    on, off = saved, saved["compared"]["merged_off"]
    assert report["landmark_jitter"] == on["landmark_jitter"] and saved["dst_landmark_jitter"] > 0
    assert on["landmark_jitter"] < off["landmark_jitter"]
    assert on["mask_edge_flicker"] < 0.5 * off["mask_edge_flicker"]  # the dst's motion from KLT, not the truth


def test_merge_command_reads_the_tracks_and_takes_the_flag(merged, tmp_path):
    """`merge --temporal 3` on aligned faces with track ids (as extract writes them): stable like batch mode."""
    from mainscripts.merger_cli import merge as merge_command
    clip, dst, figures = merged
    _aligned(clip, dst / "aligned")
    out = tmp_path / "merged"
    n = merge_command(str(dst), str(out), str(tmp_path / "merged_mask"), str(dst / "aligned"), str(tmp_path), "SAEHD",
                      predictor=standin(clip, 64), settings={"temporal": "3", "workers": "1"})
    assert n == len(clip.frames)
    got = merged_figures(clip, out, klt=False)
    assert got["flicker"] < 0.5 * figures[0]["flicker"] and got["jitter"] < 0.7 * figures[0]["jitter"], (got, figures)


def test_a_still_mask_does_not_flicker_and_noise_does():
    still = np.zeros((60, 60), np.uint8)
    still[20:40, 20:40] = 255
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert mask_edge_flicker([still] * 4, [None] + [ident] * 3) == 0.0
    shifted = [np.roll(still, k % 2, axis=1) for k in range(4)]
    full = mask_edge_flicker(shifted, [None] + [ident] * 3)
    assert full > 0.1
    soft = [(m.astype(np.float32) / 255.0 * 0.4) for m in shifted]  # an early learned mask: never reaches 0.5
    assert mask_edge_flicker(soft, [None] + [ident] * 3) == pytest.approx(0.4 * full, rel=1e-3)
    assert mask_edge_flicker([soft[0]] * 4, [None] + [ident] * 3) == 0.0
    t = np.arange(10, dtype=np.float64)[:, None, None]
    pts = np.zeros((10, 68, 2))
    pts[:, 36:48] = [[30, 40]]
    pts[:, 42:48] = [[70, 40]]  # eyes 40 px apart
    assert landmark_jitter(pts + 2.0 * t) == pytest.approx(0.0, abs=1e-9)  # steady motion is no jitter


# --- the setting ------------------------------------------------------------------------------------------

def test_the_setting_round_trips_and_has_keys(tmp_path):
    cfg = MergeConfig(temporal=4)
    save_config(tmp_path / "m.json", cfg)
    assert json.loads((tmp_path / "m.json").read_text())["temporal"] == 4
    assert load_config(tmp_path / "m.json") == cfg
    (tmp_path / "p.json").write_text('{"temporal": 99}')
    assert load_config(tmp_path / "p.json").temporal == 15  # clamped like every knob
    assert MergeConfig().temporal == 0  # off by default: DFL's per-frame merge
    assert apply_key(apply_key(MergeConfig(), "t"), "T").temporal == 6
    assert apply_key(MergeConfig(), "g").temporal == 0
    assert "Temporal smoothing: 4" in cfg.describe()


def test_faces_without_track_ids_get_them_from_their_landmarks(merged, tmp_path):
    """A DFL faceset (no track ids): the merger links the faces itself, and a jump (a cut) ends a track."""
    from merger.frames import collect_frames, rebuild_track_ids
    clip, _, _ = merged
    _aligned(clip, tmp_path / "aligned", track_id=None)
    infos = collect_frames(clip.frames[0].parent, tmp_path / "aligned")
    assert [info.track_ids for info in infos] == [[0]] * len(clip.frames)
    for info in infos[7:]:  # the face jumps by its own size at frame 7
        info.landmarks[0] = info.landmarks[0] + np.ptp(info.landmarks[0], axis=0)
        info.track_ids[0] = None
    for info in infos[:7]:
        info.track_ids[0] = None
    rebuild_track_ids(infos)
    assert [info.track_ids[0] for info in infos] == [0] * 7 + [1] * (len(infos) - 7)
