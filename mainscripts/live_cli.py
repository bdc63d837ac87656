"""`python main.py live`: the live command's flags (the command itself is mainscripts/live.py)."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser],
               device: argparse.ArgumentParser) -> None:
    """The `live` command on main.py's subcommands (`device`: the --cpu-only/--force-gpu-idxs parent)."""
    from core.settings import add_flags, flags_given
    from mainscripts.live import LIVE_OPTIONS

    p = sub.add_parser("live", parents=common + [device], help="real-time face swap from a camera, video, folder or stream",
                       description="Swap faces live: capture -> detect (every N frames, tracking between) -> landmarks "
                                   "-> align -> the model -> the merger's compositing -> window / video file / virtual "
                                   "camera. The window takes the interactive merger's keys (Tab lists them; Enter saves "
                                   "the settings as a merge config for `merge --config`). A camera or stream drops "
                                   "frames rather than fall behind; a file keeps every frame, in order. Ctrl+C ends "
                                   "and finishes the output file.")
    p.add_argument("--model-dir", required=True, help="folder of a trained model (e.g. workspace/model), or a .dfm file")
    p.add_argument("--model", default=None, help="model class in the folder: Quick96, SAEHD, AMP, ... (default: the most "
                   "recently saved face model there; not for a .dfm)")
    p.add_argument("--force-model-name", default=None, help="which model of that class when the folder has several")
    p.add_argument("--config", default=None, help="merge config JSON to start from (as `merge --config`)")
    p.add_argument("--save-config", default=None,
                   help="where Enter in the window saves the settings (default: live_merge_config.json in the model "
                        "folder, or <name>_merge_config.json beside a .dfm)")
    add_flags(p, LIVE_OPTIONS)

    def run(a: argparse.Namespace) -> None:
        from mainscripts.live import live
        live(a.model_dir, a.model, flags_given(a), a.config, a.save_config, a.force_model_name)
    p.set_defaults(func=run)
