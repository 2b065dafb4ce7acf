"""`longdoc convert`: a short checkpoint into a long-document model (Longformer, LSG, HAT)."""

from __future__ import annotations


def add_convert_command(subparsers) -> None:
    from ..convert.registry import available_targets
    from ..convert.sources import supported_model_types

    parser = subparsers.add_parser(
        "convert",
        help="turn a short pretrained checkpoint into a long-document model",
        description=(
            "Convert a short checkpoint (" + ", ".join(supported_model_types()) + ") into a long model, "
            "save it with its tokenizer, and verify that it reproduces the source on short inputs."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="source checkpoint folder (or hub id)")
    parser.add_argument("out", metavar="OUT", help="folder to write the long model to")
    parser.add_argument("--to", default="longformer", choices=available_targets(), help="long-model family")
    parser.add_argument("--max-length", type=int, default=4096, metavar="N", help="tokens the long model takes")
    parser.add_argument("--window", type=int, default=None, metavar="W",
                        help="longformer: full attention window, even (default 512)")
    lsg = parser.add_argument_group("lsg settings (defaults: 128, 128, 2, norm, 1)")
    lsg.add_argument("--block-size", type=int, metavar="N", help="tokens per local block")
    lsg.add_argument("--sparse-block-size", type=int, metavar="N", help="compressed keys on each side of a block")
    lsg.add_argument("--sparsity-factor", type=int, metavar="F", help="compression factor of the sparse keys")
    lsg.add_argument("--sparsity-type", metavar="TYPE",
                     help="norm, pooling, lsh, stride, block_stride, bos_pooling or none")
    lsg.add_argument("--num-global-tokens", type=int, metavar="G", help="learned global tokens prepended")
    hat = parser.add_argument_group("hat settings (defaults: S|S|SD|S|S|SD|S|S|SD|S|S|SD, max-length / 128, 128)")
    hat.add_argument("--layout", metavar="LAYOUT",
                     help='one of S, D, SD per layer joined by "|", e.g. "S|S|SD|S|S|SD" (S: segment-wise, '
                     'D: cross-segment, SD: both)')
    hat.add_argument("--max-sentences", type=int, metavar="N", help="segments a document may have")
    hat.add_argument("--max-sentence-size", type=int, metavar="N", help="tokens per segment, its [CLS] included")
    parser.add_argument("--seq2seq", action="store_true",
                        help="lsg: build an encoder-decoder (LSG-BART layout) warm-started from a BERT/RoBERTa "
                        "encoder, for summarization")
    parser.add_argument("--decoder-layers", type=int, metavar="N", help="--seq2seq: decoder layers (default: all)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip the source comparison")
    parser.set_defaults(run=run_convert)


LSG_SETTINGS = ("block_size", "sparse_block_size", "sparsity_factor", "sparsity_type", "num_global_tokens")
HAT_SETTINGS = ("layout", "max_sentences", "max_sentence_size")
TARGET_SETTINGS = {"longformer": ("window",), "lsg": LSG_SETTINGS, "hat": HAT_SETTINGS}


def run_convert(args) -> int:
    from ..convert import convert

    every = ("window",) + LSG_SETTINGS + HAT_SETTINGS
    settings = {name: getattr(args, name) for name in every if getattr(args, name) is not None}
    wrong = [f"--{n.replace('_', '-')}" for n in settings if n not in TARGET_SETTINGS.get(args.to, ())]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do(es) not apply to --to {args.to}")
    if args.seq2seq:
        from ..convert.seq2seq import warm_start_summarizer

        if args.to != "lsg":
            raise ValueError("--seq2seq builds an LSG encoder-decoder: use it with --to lsg")
        print(f"warm-starting an LSG encoder-decoder from {args.src} ({args.max_length} tokens) ...", flush=True)
        print(warm_start_summarizer(args.src, args.out, args.max_length, args.decoder_layers, **settings))
        return 0
    if args.decoder_layers is not None:
        raise ValueError("--decoder-layers applies only with --seq2seq")
    shown = ", ".join(f"{k} {v}" for k, v in settings.items())
    length = "" if args.to == "hat" else f"{args.max_length} tokens"  # a HAT's length is its segments'
    print(f"converting {args.src} -> {args.to} ({', '.join(x for x in (length, shown) if x)}) ...", flush=True)
    report = convert(args.src, args.out, to=args.to, max_length=args.max_length, verify=args.verify, **settings)
    print(report)
    return 0
