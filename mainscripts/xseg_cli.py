"""`python main.py xseg ...`: the XSeg command group's flags (the commands are in xseg_util and xseg_editor)."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser],
               device: argparse.ArgumentParser) -> None:
    """The `xseg` command group on main.py's subcommands (`device`: the --cpu-only/--force-gpu-idxs parent)."""
    from mainscripts import xseg_util

    xseg = sub.add_parser("xseg", parents=common, help="XSeg masks: label, fetch, apply a trained mask, export",
                          description="DFL's XSeg workflow: label faces (editor), train `train --model XSeg`, bake the "
                                      "trained mask into the faces (apply), check it in the editor, label the failures.")
    cmds = xseg.add_subparsers(dest="xseg_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("editor", parents=common, help="draw include/exclude polygons on aligned faces",
                        description="The labelling window; each face's labels are saved when you leave it.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder, e.g. workspace/data_dst/aligned")
    p.add_argument("--model-dir", default=None, help="trained XSeg model whose mask to show as a second overlay")

    def run_editor(a: argparse.Namespace) -> None:
        rc = xseg_util.editor(a.input_dir, a.model_dir)
        if rc:
            raise SystemExit(rc)
    p.set_defaults(func=run_editor)

    p = cmds.add_parser("fetch", parents=common, help="copy the labelled faces to <dir>_xseg",
                        description="Copy every face carrying labels, unchanged and under its own name, to <dir>_xseg. "
                                    "Faces whose labels cannot make a mask are listed and not copied (exit code 1).")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.set_defaults(func=lambda a: xseg_util.fetch(a.input_dir))

    p = cmds.add_parser("remove-labels", parents=common, help="delete the label polygons of every face",
                        description="Delete every face's XSeg labels. Asks first on a terminal; without one it needs --yes.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.add_argument("--yes", action="store_true", help="delete without asking (needed when stdin is not a terminal)")
    p.set_defaults(func=lambda a: xseg_util.remove_labels(a.input_dir, yes=a.yes))

    p = cmds.add_parser("apply", parents=common + [device], help="bake a trained XSeg mask into every face",
                        description="Run a trained XSeg model on every face and store its mask in the face (used by "
                                    "training and merging). Safe to stop and run again.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.add_argument("--model-dir", required=True, help="folder holding a trained XSeg model, e.g. workspace/model")
    p.set_defaults(func=lambda a: xseg_util.apply_masks(a.input_dir, a.model_dir))

    p = cmds.add_parser("remove", parents=common, help="delete the baked XSeg masks (labels stay)",
                        description="Delete every face's baked XSeg mask; training and merging use the labels or the "
                                    "landmark hull again. `xseg apply` bakes it again.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.set_defaults(func=lambda a: xseg_util.remove_masks(a.input_dir))

    p = cmds.add_parser("export-masks", parents=common, help="write each face's mask as <stem>_mask.jpg into <dir>_mask",
                        description="DFL's --export-faceset-mask (also `util --export-faceset-mask`): the baked XSeg "
                                    "mask, else the label polygons, as black-and-white images.")
    p.add_argument("--input-dir", required=True, help="aligned faces folder")
    p.set_defaults(func=lambda a: xseg_util.export_masks(a.input_dir))
