"""Command-line entry point: one sub-parser per command, each calling one function in mainscripts/.

Run `python main.py --help` for the commands and `python main.py <command> --help` for their options.
"""
from __future__ import annotations

import argparse
import errno
import multiprocessing
import sys
import traceback

from core import log
from core.errors import UserError
from core.fileio import disk_error
from core.termination import handle_termination_as_interrupt


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


def _device_choice(a: argparse.Namespace):
    """The device flags of a command as one DeviceChoice (the same one main() applies to this process)."""
    from core.devices import DeviceChoice
    return DeviceChoice.from_flags(a.cpu_only, a.force_gpu_idxs)


def _device_args(a: argparse.Namespace) -> list[str]:
    """The device flags as given, for commands that run other commands (demo)."""
    return ["--cpu-only"] if a.cpu_only else (["--force-gpu-idxs", a.force_gpu_idxs] if a.force_gpu_idxs else [])


def _add_clear_workspace(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("clear-workspace", parents=common, help="empty data_src, data_dst and model (videos stay)",
                       description="DFL's '1) clear workspace': delete data_src, data_dst and model in the workspace "
                                   "and make them again, empty. The data_src.*/data_dst.* videos and other files in the "
                                   "workspace stay. Asks first on a terminal; without one it needs --yes.")
    p.add_argument("--workspace", default="workspace", help="workspace folder (default: ./workspace)")
    p.add_argument("--yes", action="store_true", help="delete without asking (needed when stdin is not a terminal)")

    def run(a: argparse.Namespace) -> None:
        from mainscripts.clear_workspace import clear_workspace
        clear_workspace(a.workspace, yes=a.yes)
    p.set_defaults(func=run)


def _add_videoed(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import video_ed

    videoed = sub.add_parser("videoed", parents=common, help="video <-> frames, cut and denoise (ffmpeg)",
                             description="Video editing helpers: extract frames, cut, denoise, encode frames back to video.")
    cmds = videoed.add_subparsers(dest="videoed_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("extract-video", parents=common, help="write every frame of a video as an image",
                        description="Extract frames 00001.png ... from a video. "
                                    "`data_src.*` picks the first file with that name.")
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
                        description="Run ffmpeg's hqdn3d filter over a frame sequence; "
                                    "the frames are replaced only when all succeeded.")
    p.add_argument("--input-dir", required=True, help="folder of frames (one image extension)")
    p.add_argument("--factor", type=int, default=None, help="denoise strength 1..20 (asked if omitted; default 7)")
    p.set_defaults(func=lambda a: video_ed.denoise_image_sequence(a.input_dir, a.factor))

    p = cmds.add_parser("video-from-sequence", parents=common, help="encode a frame folder into a video",
                        description="Encode frames into mp4/mov/avi/mkv (by extension) with libx264; "
                                    "fps and audio from a reference video.")
    p.add_argument("--input-dir", required=True, help="folder of frames")
    p.add_argument("--output-file", required=True, help="video to write (.mp4, .mov, .avi or .mkv)")
    p.add_argument("--reference-file", default=None, help="video whose frame rate (and audio) to use, e.g. workspace/data_dst.*")
    p.add_argument("--ext", default=None, help="only use frames with this extension (default: the folder's one extension)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the reference's, else asked; 25)")
    p.add_argument("--bitrate", type=int, default=None, help="video bitrate in Mbit/s (asked if omitted; default 16)")
    p.add_argument("--include-audio", action="store_true", help="copy the reference video's first audio track")
    p.add_argument("--lossless", action="store_true", help="lossless H.264 (qp 0, yuv444p) instead of a bitrate")
    p.add_argument("--no-synthetic-marker", action="store_false", dest="synthetic_marker",
                   help="do not tag the video as synthetic media in its metadata (tagged by default)")
    p.set_defaults(func=lambda a: video_ed.video_from_sequence(a.input_dir, a.output_file, a.reference_file, a.ext,
                                                               a.fps, a.bitrate, a.include_audio, a.lossless,
                                                               a.synthetic_marker))


def _add_extract(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from core.settings import add_flags, flags_given
    from mainscripts import extractor

    p = sub.add_parser("extract", parents=common + [_device_parent()],
                       help="detect, landmark and align faces into an aligned faceset",
                       description="Turn a folder of frames into aligned face images (<frame>_<n>.jpg) carrying their "
                                   "landmarks and crop matrix. Options left out are asked for (defaults in scripts).")
    p.add_argument("--input-dir", required=True, help="folder of frames, e.g. workspace/data_src")
    p.add_argument("--output-dir", required=True, help="aligned faces folder, e.g. workspace/data_src/aligned")
    add_flags(p, extractor.EXTRACT_OPTIONS, prefix="x_")

    def run(a: argparse.Namespace) -> None:
        extractor.extract(a.input_dir, a.output_dir, extractor.ExtractSettings.from_flags(flags_given(a, "x_")),
                          debug=getattr(a, "debug", False), device=_device_choice(a))
    p.set_defaults(func=run)


def _add_sort(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from core.settings import add_flags, flags_given
    from mainscripts import sorter

    p = sub.add_parser("sort", parents=common, help="sort or prune an aligned faceset (blur, pose, histogram, best faces ...)",
                       description="Reorder the faces of a folder by a measure and rename them 00000.jpg ... in that "
                                   "order; rejected files move to <dir>_trash. Original names stay in each face's "
                                   "metadata (util --recover-original-aligned-filename). Methods: " + sorter.menu_help())
    p.add_argument("--input-dir", required=True, help="aligned faces folder, e.g. workspace/data_src/aligned")
    add_flags(p, [sorter.METHOD_OPTION], prefix="s_")  # menu if omitted and stdin is a terminal
    add_flags(p, sorter.METHOD_SETTINGS, prefix="s_")  # asked when the method needs them and stdin is a terminal
    add_flags(p, [sorter.WORKERS_OPTION], prefix="s_")
    p.set_defaults(func=lambda a: sorter.sort_from_flags(a.input_dir, flags_given(a, "s_"), debug=getattr(a, "debug", False)))


def _add_util(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import util

    p = sub.add_parser("util", parents=common, help="faceset utilities: debug images, names, metadata, pack, masks",
                       description="Faceset housekeeping; give one or more actions.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.add_argument("--add-landmarks-debug-images", action="store_true",
                   help="write <stem>_debug.jpg with the landmarks drawn into <dir>_landmarks_debug")
    p.add_argument("--recover-original-aligned-filename", action="store_true",
                   help="rename faces back to their extraction names (<frame>_<n>.jpg)")
    p.add_argument("--save-faceset-metadata", action="store_true",
                   help=f"save all face metadata to {util.METADATA_NAME} before editing the images in another program "
                        "(keep the file names; resizing is fine)")
    p.add_argument("--restore-faceset-metadata", action="store_true",
                   help="re-embed the saved metadata, scaling edited images back to their saved size")
    p.add_argument("--pack-faceset", action="store_true", help="put all faces into one faceset.pak (training reads it directly)")
    p.add_argument("--unpack-faceset", action="store_true",
                   help="write the faces of faceset.pak back as files and delete the pack")
    delete = p.add_mutually_exclusive_group()
    delete.add_argument("--delete-originals", action="store_true", default=None,
                        help="after packing, delete the packed face files (asked if omitted; default yes)")
    delete.add_argument("--keep-originals", action="store_false", dest="delete_originals",
                        help="after packing, keep the face files")
    p.add_argument("--export-faceset-mask", action="store_true",
                   help="write each face's mask (XSeg, else polygons) as <stem>_mask.jpg into <dir>_mask")
    p.set_defaults(func=lambda a: util.run_util(
        a.input_dir, add_landmarks_debug=a.add_landmarks_debug_images, recover_filenames=a.recover_original_aligned_filename,
        save_metadata=a.save_faceset_metadata, restore_metadata=a.restore_faceset_metadata, pack=a.pack_faceset,
        unpack=a.unpack_faceset, export_mask=a.export_faceset_mask, delete_originals=a.delete_originals))


def _add_facesettool(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import faceset_tool

    tool = sub.add_parser("facesettool", parents=common, help="faceset transforms (resize, re-crop)",
                          description="Faceset transforms. `enhance` (DFL's face super-resolution) is not available: "
                                      "it needs DFL's pretrained FaceEnhancer network, which this toolkit does not ship.")
    cmds = tool.add_subparsers(dest="facesettool_command", required=True, metavar="SUBCOMMAND")
    p = cmds.add_parser("resize", parents=common, help="resize faces, optionally re-cropping to a narrower face type",
                        description="Write resized faces to <dir>_resized (landmarks, mask polygons, XSeg mask and crop "
                                    "matrix transformed with the pixels), then merge them back if asked.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.add_argument("--image-size", type=int, default=None, help="new face size in pixels (asked if omitted; default 512)")
    p.add_argument("--face-type", default=None, metavar="{h,mf,f,wf,head,same}",
                   help="re-crop to this face type, which must not cover more than the current one (default same)")
    merge = p.add_mutually_exclusive_group()
    merge.add_argument("--merge", action="store_true", default=None,
                       help="replace the original faces with the resized ones (asked if omitted; default yes)")
    merge.add_argument("--no-merge", action="store_false", dest="merge", help="leave the results in <dir>_resized")
    p.add_argument("--jpeg-quality", type=int, default=100, help="JPEG quality of the new faces (default 100)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core for 64+ faces; 0 = in this process)")
    p.set_defaults(func=lambda a: faceset_tool.resize_faceset(a.input_dir, a.image_size, a.face_type, a.merge,
                                                              a.jpeg_quality, a.workers, getattr(a, "debug", False)))


def _add_importdfl(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("importdfl", aliases=["import-dfl"], parents=common,
                       help="import a DeepFaceLab SAEHD, Quick96, AMP or XSeg model (train on and merge with it here)",
                       description="Read a DFL SAEHD, Quick96 or AMP model (<name>_<Class>_data.dat and <name>_<Class>_*.npy) "
                                   "or DFL's XSeg (XSeg_data.dat, XSeg_256.npy), through a loader that runs no code, and "
                                   "write it as this toolkit's model of the same class, with DFL's exact layers: DFL's "
                                   "options, iteration, loss history, weights and optimizer state (AdaBelief or "
                                   "RMSprop). The DFL files are only read; an "
                                   "existing model is never replaced.")
    p.add_argument("--input-dir", required=True, help="the DFL model folder (DFL's workspace/model)")
    p.add_argument("--model-dir", required=True, help="folder for the imported model (may be the same folder)")
    p.add_argument("--name", default=None, help="which DFL model to import when the folder holds several (DFL's XSeg "
                                                "is named XSeg)")
    p.add_argument("--save-as", default=None, help="name of the imported model (default: the DFL model's name)")

    def run(a: argparse.Namespace) -> None:
        from mainscripts.import_dfl import import_dfl
        import_dfl(a.input_dir, a.model_dir, a.name, a.save_as)
    p.set_defaults(func=run)


def _add_train(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from core.keras_backend import PRECISIONS
    from core.settings import add_flags
    from models.loader import MODEL_NAMES, train_flag_options

    p = sub.add_parser("train", parents=common + [_device_parent()], help="train a face-swap model on a src and a dst faceset",
                       description="Train Quick96 or SAEHD (DFL's models, in Keras 3), or XSeg (the face segmentation "
                                   "model behind `xseg apply`; --generic trains it without labels). Model options left "
                                   "out are asked on the first run (defaults without a terminal); later runs keep them "
                                   "unless you press Enter within 2 seconds or pass the option's flag.")
    p.add_argument("--training-data-src-dir", required=True, help="aligned src faces (folder or folder with faceset.pak)")
    p.add_argument("--training-data-dst-dir", required=True, help="aligned dst faces")
    p.add_argument("--pretraining-data-dir", default=None, help="aligned faces of many people, used when pretrain is on")
    p.add_argument("--model-dir", required=True, help="folder holding the model files (created if missing)")
    p.add_argument("--model", required=True, choices=MODEL_NAMES, help="model class")
    p.add_argument("--force-model-name", default=None,
                   help="use or create the model with this name (no menu); needed to start a first model of this class "
                        "unattended in a folder that holds models of another class")
    p.add_argument("--no-preview", action="store_true", help="no window; Ctrl+C saves and exits")
    p.add_argument("--silent-start", action="store_true", help="no prompts: the newest model and its saved options")
    p.add_argument("--target-iteration", type=int, default=0, help="save and stop at this iteration (0 = train until stopped)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="compute precision (weights stay float32); auto = mixed_bfloat16 with TensorFlow on CPUs with "
                        "AVX512-BF16/AMX (~1.7-2x faster), else float32")
    jit = p.add_mutually_exclusive_group()
    jit.add_argument("--jit", action="store_true", default=None, help="force XLA/jit compilation of the train step")
    jit.add_argument("--no-jit", action="store_false", dest="jit", help="never jit (default: JAX always, TensorFlow on GPU)")
    p.add_argument("--autosave-minutes", type=float, default=25.0, help="save every N minutes (default 25)")
    p.add_argument("--sample-workers", type=int, default=None, dest="workers",
                   help="background processes per side producing batches (default 1; 0 = in the training process)")
    options = p.add_argument_group("model options (SAEHD's, and XSeg's --face-type, --batch-size, --generic, --dims, "
                                   "--resolution; Quick96 has a fixed configuration and refuses them; the same checks "
                                   "apply to the model's <name>_<Model>_options.json)")
    add_flags(options, train_flag_options())

    def run(a: argparse.Namespace) -> None:
        from pathlib import Path

        from core.settings import flags_given
        from mainscripts.trainer import TrainSettings, train
        train(TrainSettings(
            src_dir=Path(a.training_data_src_dir), dst_dir=Path(a.training_data_dst_dir), model_dir=Path(a.model_dir),
            model=a.model, pretraining_dir=Path(a.pretraining_data_dir) if a.pretraining_data_dir else None,
            force_model_name=a.force_model_name, no_preview=a.no_preview, silent_start=a.silent_start,
            target_iteration=a.target_iteration, precision=a.precision, jit=a.jit, autosave_minutes=a.autosave_minutes,
            workers=a.workers, options=flags_given(a)))
    p.set_defaults(func=run)


def _add_evaluate(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", parents=common + [_device_parent()],
                       help="score a merged result: identity, landmarks, pose, jitter",
                       description="Compare data_dst/merged with the original dst frames and the src faceset: identity "
                                   "similarity (dlib embeddings) to src and to dst, landmark and pose agreement with dst, "
                                   "frame-to-frame jitter of the face and mask-edge flicker of the merged mask, next to the "
                                   "dst's own. Also writes <workspace>/evaluation.json.")
    p.add_argument("--workspace", default="workspace", help="workspace folder (default: ./workspace)")
    p.add_argument("--max-frames", type=int, default=100, help="consecutive merged frames to score (default 100)")
    p.add_argument("--compare-dir", action="append", default=[],
                   help="another merged folder (masks in <folder>_mask), e.g. the same merge with --temporal 0: its "
                        "landmark jitter and mask-edge flicker are printed beside (repeatable)")

    def run(a: argparse.Namespace) -> None:
        from mainscripts.evaluate import evaluate
        evaluate(a.workspace, max_frames=a.max_frames, compare=a.compare_dir)
    p.set_defaults(func=run)


def _add_demo(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from mainscripts import demo

    p = sub.add_parser("demo", parents=common + [_device_parent()], help="build the demo workspace and run the pipeline on it",
                       description="Make two short videos from bundled public-domain photos and run every pipeline "
                                   "stage on them (extract, train a small SAEHD, merge, encode), printing each command.")
    p.add_argument("--workspace", default="workspace", help="workspace folder (default: ./workspace)")
    p.add_argument("--model", choices=list(demo.DEMO_MODELS), default="SAEHD",
                   help="which model the demo trains and merges with (default SAEHD; Reenact reenacts, not swaps)")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"training iterations of the demo model (default: per model, {demo.DEMO_ITERATIONS} for SAEHD, "
                        "a few minutes on a CPU)")
    p.set_defaults(func=lambda a: demo.run_demo(a.workspace, a.iterations, device_args=_device_args(a), model=a.model))


def _add_merge(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from core.settings import add_flags, flags_given
    from mainscripts import merger_cli
    from merger.config import MERGE_OPTIONS

    p = sub.add_parser("merge", parents=common + [_device_parent()], help="put the trained face onto every dst frame",
                       description="Merge a trained model's faces into the dst frames: merged/<frame>.png and "
                                   "merged_mask/<frame>.png. Interactive window by default on a terminal; batch with "
                                   "--config, a setting flag or --no-interactive (and always when stdin is not a "
                                   "terminal).")
    p.add_argument("--input-dir", required=True, help="dst frames, e.g. workspace/data_dst")
    p.add_argument("--output-dir", required=True, help="merged frames, e.g. workspace/data_dst/merged")
    p.add_argument("--output-mask-dir", required=True, help="merged masks, e.g. workspace/data_dst/merged_mask")
    p.add_argument("--aligned-dir", default=None,
                   help="aligned dst faces (their landmarks place the faces), e.g. workspace/data_dst/aligned")
    p.add_argument("--model-dir", required=True,
                   help="model folder, e.g. workspace/model, or a .dfm file (DeepFaceLive's ONNX model: ours, DFL's "
                        "or a community one), e.g. workspace/model/new_SAEHD.dfm")
    p.add_argument("--model", default=None, dest="model_class", metavar="{Quick96,SAEHD,AMP,...,DFM}",
                   help="model class to load (required unless --model-dir is a .dfm file; DFM: a .dfm file of the "
                        "model folder)")
    p.add_argument("--force-model-name", default=None,
                   help="which saved model of this class to use when the folder holds several (no menu; without it "
                        "and without a terminal: the most recently saved); with --model DFM the .dfm's name "
                        "without .dfm")
    p.add_argument("--xseg-model-dir", default=None,
                   help="folder of the trained XSeg model the XSeg mask modes use (default: --model-dir, where DFL "
                        "keeps it); loaded only when such a mode is chosen")
    p.add_argument("--config", default=None, dest="config_path",
                   help="merge settings JSON (any subset of the settings; batch mode, one setting for all frames)")
    add_flags(p, merger_cli.RUN_OPTIONS, prefix="m_")  # --interactive/--no-interactive, --workers, --dfm-face-type
    add_flags(p.add_argument_group("merge settings", "each merger setting for all frames (batch mode; with "
                                   "--interactive the window's starting values); they win over --config's values"),
              MERGE_OPTIONS, prefix="m_")
    p.set_defaults(func=lambda a: merger_cli.merge(
        a.input_dir, a.output_dir, a.output_mask_dir, a.aligned_dir, a.model_dir, a.model_class,
        config_path=a.config_path, debug=getattr(a, "debug", False), model_name=a.force_model_name,
        settings=flags_given(a, "m_"), xseg_model_dir=a.xseg_model_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Face-swap toolkit in the DeepFaceLab style.",
        epilog="Run 'python main.py <command> --help' for a command's options.")
    from core.version import __version__
    parser.add_argument("--version", action="version", version=f"facekit {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show full tracebacks and debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_debug_parent()]
    _add_clear_workspace(sub, common)
    _add_videoed(sub, common)
    _add_extract(sub, common)
    _add_sort(sub, common)
    _add_util(sub, common)
    _add_facesettool(sub, common)
    _add_importdfl(sub, common)
    _add_train(sub, common)
    _add_demo(sub, common)
    _add_merge(sub, common)
    _add_evaluate(sub, common)
    from mainscripts import export_cli, live_cli, xseg_cli
    xseg_cli.add_parser(sub, common, _device_parent())
    export_cli.add_parser(sub, common, _device_parent())
    live_cli.add_parser(sub, common, _device_parent())
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    log.setup(debug)
    handle_termination_as_interrupt()
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
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) or e.filename is not None:
            if debug:
                traceback.print_exc()
            where = e.filename if e.filename is not None else "a file"
            disk = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
            log.error(str(disk_error(e, where)) if disk else f"{where}: {e.strerror or e}")
            return 1
        if debug:
            traceback.print_exc()
        log.error(f"unexpected {type(e).__name__}: {e} (run again with --debug for the traceback)")
        return 1
    except Exception as e:  # a bug: say so in one line, full traceback with --debug
        if debug:
            traceback.print_exc()
        log.error(f"unexpected {type(e).__name__}: {e} (run again with --debug for the traceback)")
        return 1
    return 0


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    sys.exit(main())
