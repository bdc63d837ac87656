"""`python main.py exportdfm` / `exportonnx`: the flags of the model exports (the work is in export_model)."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser],
               device: argparse.ArgumentParser) -> None:
    """The `exportdfm` and `exportonnx` commands on main.py's subcommands (`device`: the --cpu-only parent)."""
    from core.settings import add_flags, flags_given
    from mainscripts.export_model import DFM_MODELS, EXPORT_OPTIONS, ONNX_MODELS

    p = sub.add_parser("exportdfm", parents=common + [device], help="export a SAEHD, Quick96 or AMP model as a .dfm",
                       description="Write a trained face model as a .dfm (an ONNX file: DeepFaceLive and FaceFusion's "
                                   "deep swapper run it): input in_face:0 [N,R,R,3] BGR 0..1 (AMP adds morph_value:0 "
                                   "[1]), outputs out_face_mask:0, out_celeb_face:0, out_celeb_face_mask:0, opset 12. "
                                   "The file is <name>_<Model>.dfm in the model folder (DFL names its own "
                                   "<name>_<Model>_model.dfm). Nothing is written unless onnxruntime's output matches "
                                   "the model's.")
    p.add_argument("--model-dir", required=True, help="model folder, e.g. workspace/model")
    p.add_argument("--model", required=True, dest="model_class", choices=DFM_MODELS, help="model class to export")
    p.add_argument("--force-model-name", default=None,
                   help="which saved model of this class to export when the folder holds several (no menu; without "
                        "it and without a terminal: the most recently saved)")
    p.add_argument("--output-file", default=None, help="where to write the .dfm (default: <model-dir>/<name>_<Model>.dfm)")
    add_flags(p, EXPORT_OPTIONS, prefix="e_")

    def run_dfm(a: argparse.Namespace) -> None:
        from mainscripts.export_model import export_dfm
        export_dfm(a.model_dir, a.model_class, a.force_model_name, a.output_file, flags_given(a, "e_"))
    p.set_defaults(func=run_dfm)

    p = sub.add_parser("exportonnx", parents=common + [device], help="export a trained XSeg model as ONNX",
                       description="Write a trained XSeg model as ONNX for occlusion maskers that take DFL's XSeg "
                                   "ONNX: in_face:0 [N,R,R,3] BGR 0..1 -> out_mask:0 [N,R,R,1] 0..1, opset 13. The file "
                                   "is <name>_XSeg.onnx in the model folder.")
    p.add_argument("--model-dir", required=True, help="folder holding the trained XSeg model, e.g. workspace/model")
    p.add_argument("--model", default="XSeg", dest="model_class", choices=ONNX_MODELS, help="model class (default XSeg)")
    p.add_argument("--force-model-name", default=None, help="which saved XSeg model to export when there are several")
    p.add_argument("--output-file", default=None, help="where to write the .onnx (default: <model-dir>/<name>_XSeg.onnx)")

    def run_onnx(a: argparse.Namespace) -> None:
        from mainscripts.export_model import export_xseg_onnx
        export_xseg_onnx(a.model_dir, a.model_class, a.force_model_name, a.output_file)
    p.set_defaults(func=run_onnx)
