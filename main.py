"""Command-line entry point: one sub-parser per command, each calling one function in mainscripts/.

Run `python main.py --help` for the commands and `python main.py <command> --help` for their options.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import traceback

from core import log
from core.errors import UserError


def _debug_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks and debug messages")
    return parent


def _device_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--cpu-only", action="store_true", default=False, help="compute on the CPU even if a GPU is present")
    parent.add_argument("--force-gpu-idxs", metavar="0,1", default=None,
                        help="comma-separated GPU indices to use (default: all visible GPUs)")
    return parent


def _add_videoed(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import video_ed

    videoed = sub.add_parser("videoed", parents=common, help="video <-> frames, cut and denoise (ffmpeg)",
                             description="Video editing helpers: extract frames, cut, denoise, encode frames back to video.")
    cmds = videoed.add_subparsers(dest="videoed_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("extract-video", parents=common, help="write every frame of a video as an image",
                        description="Extract frames 00001.png ... from a video. `data_src.*` picks the first file with that name.")
    p.add_argument("--input-file", required=True, help="video file (a '.*' extension picks any)")
    p.add_argument("--output-dir", required=True, help="folder for the frames (created if missing)")
    p.add_argument("--output-ext", choices=video_ed.FRAME_EXTS, default=None, help="frame format (asked if omitted; default png)")
    p.add_argument("--fps", type=float, default=None, help="frames per second to extract; 0 = full frame rate (asked if omitted)")
    p.set_defaults(func=lambda a: video_ed.extract_video(a.input_file, a.output_dir, a.output_ext, a.fps))

    p = cmds.add_parser("cut-video", parents=common, help="cut a time range out of a video into <name>_cut.<ext>",
                        description="Re-encode [from, to) of a video with libx264, keeping one audio track.")
    p.add_argument("--input-file", required=True, help="video file")
    p.add_argument("--from-time", default=None, help="start, HH:MM:SS.mmm or seconds (asked if omitted; default 0)")
    p.add_argument("--to-time", default=None, help="end, HH:MM:SS.mmm or seconds, or 'end' (asked if omitted)")
    p.add_argument("--audio-track-id", type=int, default=None, help="which audio track to keep (default 0)")
    p.add_argument("--bitrate", type=int, default=None, help="video bitrate in Mbit/s (default 25)")
    p.set_defaults(func=lambda a: video_ed.cut_video(a.input_file, a.from_time, a.to_time, a.audio_track_id, a.bitrate))

    p = cmds.add_parser("denoise-image-sequence", parents=common, help="temporal denoise of a frame folder, in place",
                        description="Run ffmpeg's hqdn3d filter over a frame sequence; the frames are replaced only when all succeeded.")
    p.add_argument("--input-dir", required=True, help="folder of frames (one image extension)")
    p.add_argument("--factor", type=int, default=None, help="denoise strength 1..20 (asked if omitted; default 7)")
    p.set_defaults(func=lambda a: video_ed.denoise_image_sequence(a.input_dir, a.factor))

    p = cmds.add_parser("video-from-sequence", parents=common, help="encode a frame folder into a video",
                        description="Encode frames into mp4/mov/avi/mkv (by extension) with libx264; fps and audio from a reference video.")
    p.add_argument("--input-dir", required=True, help="folder of frames")
    p.add_argument("--output-file", required=True, help="video to write (.mp4, .mov, .avi or .mkv)")
    p.add_argument("--reference-file", default=None, help="video whose frame rate (and audio) to use, e.g. workspace/data_dst.*")
    p.add_argument("--ext", default=None, help="only use frames with this extension (default: the folder's one extension)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the reference's, else asked; 25)")
    p.add_argument("--bitrate", type=int, default=None, help="video bitrate in Mbit/s (asked if omitted; default 16)")
    p.add_argument("--include-audio", action="store_true", help="copy the reference video's first audio track")
    p.add_argument("--lossless", action="store_true", help="lossless H.264 (qp 0, yuv444p) instead of a bitrate")
    p.set_defaults(func=lambda a: video_ed.video_from_sequence(a.input_dir, a.output_file, a.reference_file, a.ext,
                                                               a.fps, a.bitrate, a.include_audio, a.lossless))


def _add_extract(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import extractor

    p = sub.add_parser("extract", parents=common, help="detect, landmark and align faces into an aligned faceset",
                       description="Turn a folder of frames into aligned face images (<frame>_<n>.jpg) carrying their "
                                   "landmarks and crop matrix. Options left out are asked for (defaults in scripts).")
    p.add_argument("--input-dir", required=True, help="folder of frames, e.g. workspace/data_src")
    p.add_argument("--output-dir", required=True, help="aligned faces folder, e.g. workspace/data_src/aligned")
    p.add_argument("--detector", choices=(*extractor.AUTO_DETECTORS, "manual"), default=None,
                   help="face detector (default centerface); manual opens a window to place each face")
    p.add_argument("--face-type", default=None, metavar="{h,mf,f,wf,head}",
                   help="half_face, midfull_face, full_face, whole_face (default) or head; short codes accepted")
    p.add_argument("--max-faces-from-image", type=int, default=None, dest="max_faces",
                   help="keep the N largest faces of each frame (default 0 = all)")
    p.add_argument("--image-size", type=int, default=None, help="aligned face size in pixels (default 512, 768 for head)")
    p.add_argument("--jpeg-quality", type=int, default=None, help="JPEG quality 1-100 (default 90)")
    debug_out = p.add_mutually_exclusive_group()
    debug_out.add_argument("--output-debug", action="store_true", default=None,
                           help="also write <output-dir>_debug/<frame>.jpg with landmarks, detector box and crop drawn")
    debug_out.add_argument("--no-output-debug", action="store_false", dest="output_debug")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU core, at most 8; 0 = in this process)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", default=None, help="continue a partly extracted folder")
    again.add_argument("--force", action="store_false", dest="resume",
                       help="delete faces already in the output folder and start over")
    p.add_argument("--reference-face", nargs="+", default=(), metavar="IMG",
                   help="keep only faces of the person in these photos (identity filter)")
    p.add_argument("--identity-threshold", type=float, default=0.6,
                   help="max face-embedding distance to the reference photos (default 0.6; lower = stricter)")
    p.add_argument("--smooth-landmarks", action="store_true",
                   help="smooth landmarks across consecutive video frames (removes jitter, no lag)")
    p.add_argument("--manual-fix", action="store_true", help="after the automatic pass, place faces by hand in frames where none was found")
    p.add_argument("--manual-window-size", type=int, default=1368, help="width of the manual window (default 1368)")
    p.set_defaults(func=lambda a: extractor.extract(
        a.input_dir, a.output_dir, detector=a.detector, face_type=a.face_type, max_faces=a.max_faces,
        image_size=a.image_size, jpeg_quality=a.jpeg_quality, output_debug=a.output_debug, workers=a.workers,
        resume=a.resume, reference_faces=a.reference_face, identity_threshold=a.identity_threshold,
        smooth_landmarks=a.smooth_landmarks, manual_fix=a.manual_fix, manual_window_size=a.manual_window_size,
        debug=getattr(a, "debug", False)))


def _add_demo(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import demo

    p = sub.add_parser("demo", parents=common + [_device_parent()], help="build the demo workspace and run the pipeline on it",
                       description="Make two short videos from bundled public-domain photos and run every pipeline stage "
                                   "that exists on them, printing each command.")
    p.add_argument("--workspace", default="workspace", help="workspace folder (default: ./workspace)")
    p.set_defaults(func=lambda a: demo.run_demo(a.workspace))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Face-swap toolkit in the DeepFaceLab style.",
        epilog="Run 'python main.py <command> --help' for a command's options.")
    parser.add_argument("--debug", action="store_true", default=False, help="show full tracebacks and debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_debug_parent()]
    _add_videoed(sub, common)
    _add_extract(sub, common)
    _add_demo(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    log.setup(debug)
    try:
        if hasattr(args, "cpu_only"):
            from core.devices import DeviceChoice
            DeviceChoice.from_flags(args.cpu_only, args.force_gpu_idxs).apply()
        args.func(args)
    except UserError as e:
        log.error(str(e))
        if debug:
            traceback.print_exc()
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # a bug: say so in one line, full traceback with --debug
        if debug:
            traceback.print_exc()
        log.error(f"unexpected {type(e).__name__}: {e} (run again with --debug for the traceback)")
        return 1
    return 0


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    sys.exit(main())
