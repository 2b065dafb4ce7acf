"""`longdoc export`: a trained model as ONNX graphs (dynamic batch and length), checked against PyTorch."""

from __future__ import annotations


def add_export_command(subparsers) -> None:
    from ..export.support import EXPORTS, REFUSED_FAMILIES

    exported = "; ".join(f"{family}: {', '.join(heads)}" for family, heads in EXPORTS.items())
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX (served with `longdoc serve --runtime onnx`)",
        description=(
            "Export a trained model (the folder `longdoc train` wrote) to ONNX with dynamic batch and length axes, "
            "check the graphs against the PyTorch model at several lengths (fp32 within 1e-4) and write them with "
            f"the tokenizer, config.json and longdoc_export.json into OUT_DIR. Exported: {exported}. Refused, with "
            f"the reason: {', '.join(REFUSED_FAMILIES)}, and summarizers (seq2seq)."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a trained model folder")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="a new (or empty) folder for the export")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset, 18 or later (default: the exporter's)")
    parser.add_argument("--optimize", action="store_true",
                        help="save onnxruntime's optimized graphs (extended level: fused LayerNorm, GELU, attention)")
    parser.add_argument("--quantize", choices=["int8"],
                        help="also write int8 graphs (dynamic quantization of the weights); pipelines then run them")
    parser.set_defaults(run=run_export)


def run_export(args) -> int:
    from ..export import export_onnx

    print(f"exporting {args.model_dir} to {args.format} ...", flush=True)
    print(export_onnx(args.model_dir, args.out_dir, format=args.format, opset=args.opset, optimize=args.optimize,
                      quantize=args.quantize))
    return 0
