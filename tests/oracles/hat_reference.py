"""HAT reference oracle: runs inside the reference virtualenv (torch 2.13 CPU, transformers 4.57.x); never imports longdoc.

The reference is the HAT authors' implementation (github coastalcph/hierarchical-transformers,
models/hat/modelling_hat.py).  CI cannot reach it, so this script turns it into committed fixtures
(tests/fixtures/hat/) that our own HAT model is tested against.

    python hat_reference.py make --reference REPO_GIT_DIR [--commit SHA] [--only current|legacy|all]
                                 [--case NAME ...] OUT_DIR
        Extract models/hat/modelling_hat.py from the (bare or not) git directory at the commit (default:
        HEAD for the current cases, 572602e for the legacy ones), import it from a temporary package, and
        for each case build the reference model with a fixed seed and random weights, put it in eval mode and
        write OUT_DIR/<case>/: config.json + pytorch_model.bin (the reference's save_pretrained,
        safe_serialization=False: the segment-position tables of the document encoders are tied, so it can
        only write .bin), io.safetensors (inputs and every output the reference returns) and case.json.

    python hat_reference.py run --reference REPO_GIT_DIR [--commit SHA] CHECKPOINT_DIR CLASS
                                [--init-kwargs JSON] [--compare IO_SAFETENSORS]
        Load CHECKPOINT_DIR (written by anyone, e.g. longdoc's save_pretrained) with the reference class
        CLASS.from_pretrained(..., output_loading_info=True) and print the load report as JSON (missing,
        unexpected and mismatched keys, error messages, whether the segment-position tables ended up tied).
        With --compare, also run the loaded model on the inputs of a fixture's io.safetensors and report the
        largest absolute difference from each stored output.

Importing the reference under transformers 4.57 needs no patch: the file only imports transformers
(file_utils, modeling_outputs, modeling_utils, utils.logging, roberta's RobertaAttention /
RobertaIntermediate / RobertaOutput, activations.gelu, PretrainedConfig), all still present in 4.57.
HATForTokenClassification and HATForQuestionAnswering cannot be built (they call
HATModel(config, add_pooling_layer=False), which HATModel.__init__ does not accept): no fixtures for them.
"""

import argparse
import atexit
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import warnings

import torch

warnings.filterwarnings("ignore", category=FutureWarning)  # 4.57: get_extended_attention_mask's `device` argument

REFERENCE_FILE = "models/hat/modelling_hat.py"
LEGACY_COMMIT = "572602e"  # before b5d0470: segment positions added to the outputs, never to the document encoder
LEGACY_SNIPPET = "outputs[:, ::self.max_sentence_length] += self.position_embeddings(sentence_positions)"

# ----------------------------------------------------------------------------------------------- cases

ROBERTA_LIKE = {"pad": 1, "cls": 2}
BERT_LIKE = {"pad": 0, "cls": 3}


def case(name, cls, layout, *, tokens=ROBERTA_LIKE, type_vocab_size=2, n_segments=6, max_sentences=6, msl=8,
         batch=3, labels=None, num_labels=3, problem_type=None, init_kwargs=None, seed=0, group="current",
         choices=None, store="all", notes=""):
    """store: which of the reference's outputs go to io.safetensors (kept small, see collect_outputs):
    "all": everything; "head": the head's own outputs, loss, the last hidden state and sentence_attentions;
    "cls": the head's own outputs, loss and hidden_states_cls.{i} = hidden_states.{i}[:, ::max_sentence_length]
    (the max_sentence_length 128 cases, whose full hidden states would be large)."""
    return dict(name=name, cls=cls, layout=layout, tokens=tokens, type_vocab_size=type_vocab_size,
                n_segments=n_segments, max_sentences=max_sentences, msl=msl, batch=batch, labels=labels,
                num_labels=num_labels, problem_type=problem_type, init_kwargs=init_kwargs or {}, seed=seed,
                group=group, choices=choices, store=store, notes=notes)


BASE = "S|S|SD|S|S|SD"  # hierarchical-transformer-base-4096 style
CASES = [
    # the bare model, one per layout: every output stored (the encoder's parity)
    case("model-base", "HATModel", BASE, seed=11),
    case("model-adhoc", "HATModel", "S|SD|D|D", seed=12, n_segments=4,
         notes="ends with document-only layers: they write into their input tensor (hidden_states aliasing)"),
    case("model-dfirst", "HATModel", "D|S|SD", tokens=BERT_LIKE, type_vocab_size=1, seed=13,
         notes="starts with a document-only layer: it writes into the embedding output, hidden_states.0"),
    case("model-sdsdsd", "HATModel", "SD|SD|SD", tokens=BERT_LIKE, seed=14, n_segments=4),
    case("model-ssdd", "HATModel", "S|S|SD|D", type_vocab_size=1, seed=15, n_segments=4),
    # heads: short layouts, the head's outputs only (the encoder is covered by the model-* cases)
    case("mlm", "HATForMaskedLM", "S|SD|D", labels="mlm", seed=21, n_segments=4, store="head",
         notes="labels -100 except on ~30% of the real non-CLS tokens; lm_head.decoder.weight is tied to the "
               "word embeddings (tie_word_embeddings defaults to true)"),
    case("seqcls-max", "HATForSequenceClassification", "S|SD", init_kwargs={"pooling": "max"},
         tokens=BERT_LIKE, labels="single", seed=31, n_segments=4, store="head",
         notes="max pooling over the CLS slots of all segments, empty ones included (no masking)"),
    case("seqcls-attentive", "HATForSequenceClassification", "SD|D", init_kwargs={"pooling": "attentive"},
         labels="single", seed=32, store="head",
         notes="attentive pooling over the CLS slots of all segments, empty ones included (no masking)"),
    case("seqcls-first", "HATForSequenceClassification", "S|SD|D", init_kwargs={"pooling": "first"},
         labels="single", seed=33, n_segments=4, store="head"),
    case("seqcls-last", "HATForSequenceClassification", "S|SD", init_kwargs={"pooling": "last"},
         labels="single", seed=34, msl=128, max_sentences=3, n_segments=3, store="cls",
         notes="pooling 'last' pools the token at index -128 (hard-coded), the CLS of the last segment only "
               "when max_sentence_length is 128 (with 8 it is an IndexError below 16 segments): so this case "
               "uses max_sentence_length 128; document 1's last segment is empty, so its pooled token is the "
               "CLS slot of an empty segment"),
    case("seqcls-multilabel", "HATForSequenceClassification", "D|SD", init_kwargs={"pooling": "max"},
         tokens=BERT_LIKE, type_vocab_size=1, labels="multi", num_labels=4,
         problem_type="multi_label_classification", seed=35, store="head"),
    case("sentcls-single", "HATModelForSequentialSentenceClassification", "S|SD|D", labels="sent-single",
         seed=41, store="head", notes="labels -100 on empty segments"),
    case("sentcls-multilabel", "HATModelForSequentialSentenceClassification", "S|SD", type_vocab_size=1,
         labels="sent-multi", num_labels=4, problem_type="multi_label_classification", seed=42, n_segments=4,
         store="head", notes="label rows of -1 on empty segments (the reference keeps the rows whose first "
                             "label is not -1)"),
    case("multiple-choice", "HATForMultipleChoice", "S|SD", labels="choice", seed=51, msl=128, max_sentences=2,
         n_segments=2, batch=2, choices=3, store="cls",
         notes="pooling 'last' (the default) pools index -128, hence max_sentence_length 128; inputs "
               "(batch 2, 3 choices, 256 tokens); the choice rows cycle full / last segment empty / first "
               "segment empty"),
    # legacy: the reference before b5d0470
    case("legacy-model-base", "HATModel", BASE, seed=11, group="legacy", store="head",
         notes="same weights and inputs as model-base; before b5d0470 the segment positions were added to "
               "the CLS slots of the outputs, which the document encoder's output then overwrote: "
               "the segment-position tables have no effect at all"),
    case("legacy-seqcls-max", "HATForSequenceClassification", BASE, init_kwargs={"pooling": "max"},
         labels="single", seed=61, group="legacy", n_segments=4, store="head", notes="reference before b5d0470"),
]
CASE_NAMES = [c["name"] for c in CASES]


def layout_dict(layout):
    out = {}
    for i, part in enumerate(layout.split("|")):
        assert part in ("S", "D", "SD"), layout
        out[str(i)] = {"sentence_encoder": "S" in part, "document_encoder": "D" in part}
    return out


# ----------------------------------------------------------------------------------------------- reference


def git(git_dir, *args):
    return subprocess.run(["git", "-C", str(git_dir), *args], check=True, capture_output=True, text=True).stdout


def load_reference(git_dir, commit):
    """Import models/hat/modelling_hat.py of `commit` from a temp package; returns (module, full sha, source)."""
    sha = git(git_dir, "rev-parse", "--verify", f"{commit}^{{commit}}").strip()
    source = git(git_dir, "show", f"{sha}:{REFERENCE_FILE}")
    tmp = Path(tempfile.mkdtemp(prefix="hat_reference_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    pkg = tmp / f"hat_reference_{sha[:10]}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    # No patch is needed under transformers 4.57.x: the file is written byte for byte as stored at `sha`.
    (pkg / "modelling_hat.py").write_text(source)
    name = f"{pkg.name}.modelling_hat"
    spec = importlib.util.spec_from_file_location(pkg.name, pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[pkg.name] = package
    spec.loader.exec_module(package)
    spec = importlib.util.spec_from_file_location(name, pkg / "modelling_hat.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, sha, source


def variant_of(source):
    for line in source.splitlines():
        if LEGACY_SNIPPET in line:
            return "legacy" if not line.strip().startswith("#") else "current"
    return "unknown"


# ----------------------------------------------------------------------------------------------- inputs


def segment_lengths(c, gen):
    """Real length (0 = empty segment) of every segment of every document (batch x n_segments)."""
    n, msl = c["n_segments"], c["msl"]
    rows = c["batch"] * (c["choices"] or 1)

    def rand_len():
        return int(torch.randint(2, msl + 1, (1,), generator=gen))

    lengths = []
    for r in range(rows):
        kind = r % 3
        if kind == 0:  # every segment full
            row = [msl] * n
        elif kind == 1:  # the last two segments empty (the last one only when there are 2 segments)
            empty = 1 if n <= 2 else 2
            row = [rand_len() for _ in range(n - empty)] + [0] * empty
        else:  # one empty segment in the middle, padding within segments
            row = [rand_len() for _ in range(n)]
            row[n // 2 if n > 2 else 0] = 0
            if n <= 2:  # keep one non-empty segment: the empty one first, a short one last
                row = [0, rand_len()]
        lengths.append(row)
    return torch.tensor(lengths)


def make_inputs(c, config):
    gen = torch.Generator().manual_seed(c["seed"] + 1000)
    pad, cls_id = c["tokens"]["pad"], c["tokens"]["cls"]
    n, msl = c["n_segments"], c["msl"]
    lengths = segment_lengths(c, gen)  # (rows, n)
    rows = lengths.size(0)
    pos = torch.arange(msl)
    seg_mask = (pos[None, None, :] < lengths[:, :, None]).long()  # (rows, n, msl)
    ids = torch.randint(5, config.vocab_size, (rows, n, msl), generator=gen)
    ids[:, :, 0] = cls_id
    ids = ids.masked_fill(seg_mask == 0, pad)
    input_ids = ids.reshape(rows, n * msl)
    attention_mask = seg_mask.reshape(rows, n * msl)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    segment_mask = (lengths > 0)  # (rows, n)

    kind = c["labels"]
    B = c["batch"]
    if kind == "mlm":
        choose = (torch.rand(input_ids.shape, generator=gen) < 0.3) & (attention_mask == 1)
        choose[:, ::msl] = False
        labels = torch.full_like(input_ids, -100)
        labels[choose] = torch.randint(5, config.vocab_size, (int(choose.sum()),), generator=gen)
        inputs["labels"] = labels
    elif kind == "single":
        inputs["labels"] = torch.randint(0, c["num_labels"], (B,), generator=gen)
    elif kind == "multi":
        inputs["labels"] = (torch.rand((B, c["num_labels"]), generator=gen) < 0.5).float()
    elif kind == "sent-single":
        labels = torch.randint(0, c["num_labels"], (B, n), generator=gen)
        inputs["labels"] = labels.masked_fill(~segment_mask, -100)
    elif kind == "sent-multi":
        labels = (torch.rand((B, n, c["num_labels"]), generator=gen) < 0.5).float()
        inputs["labels"] = labels.masked_fill(~segment_mask[:, :, None], -1.0)
    elif kind == "choice":
        inputs["labels"] = torch.randint(0, c["choices"], (B,), generator=gen)
    if c["choices"]:
        for key in ("input_ids", "attention_mask"):
            inputs[key] = inputs[key].reshape(B, c["choices"], n * msl)
    return inputs, lengths


# ----------------------------------------------------------------------------------------------- models


def build_config(ref, c):
    msl, max_sentences = c["msl"], c["max_sentences"]
    kwargs = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=len(c["layout"].split("|")), num_attention_heads=4,
        intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_sentences=max_sentences, max_sentence_size=msl, max_sentence_length=msl, max_position_embeddings=msl,
        model_max_length=msl * max_sentences, type_vocab_size=c["type_vocab_size"], initializer_range=0.2,
        layer_norm_eps=1e-12, pad_token_id=c["tokens"]["pad"], encoder_layout=layout_dict(c["layout"]),
        num_labels=c["num_labels"],
    )
    if c["tokens"] is ROBERTA_LIKE:
        kwargs.update(bos_token_id=0, eos_token_id=2)
    if c["problem_type"]:
        kwargs["problem_type"] = c["problem_type"]
    return ref.HATConfig(**kwargs)


def build_model(ref, c):
    torch.manual_seed(c["seed"])
    config = build_config(ref, c)
    model = getattr(ref, c["cls"])(config, **c["init_kwargs"])
    # Perturb every parameter (tied ones once: parameters() yields a shared tensor once) so that no weight is
    # left at an exact 0 or 1 by the reference's _init_weights: padding rows of the embeddings, biases and
    # LayerNorm weights, which would hide indexing and affine mix-ups in a parity test.
    gen = torch.Generator().manual_seed(c["seed"] + 2000)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    model.eval()
    return model


def tied_groups(model):
    by_ptr = {}
    for key, value in model.state_dict(keep_vars=True).items():
        by_ptr.setdefault((value.data_ptr(), tuple(value.shape)), []).append(key)
    return sorted(sorted(keys) for keys in by_ptr.values() if len(keys) > 1)


def snapshot_hooks(model):
    """Clone the input of every HATLayer when it is called (what hidden_states[i] should hold)."""
    snaps = {}
    handles = []
    for i, layer in enumerate(find_layers(model)):
        def pre(module, args, i=i):
            snaps[i] = args[0].detach().clone()
        handles.append(layer.register_forward_pre_hook(pre))
    return snaps, handles


def find_layers(model):
    for module in model.modules():
        if module.__class__.__name__ == "HATEncoder":
            return list(module.layer)
    raise RuntimeError("no HATEncoder")


def run_forward(model, inputs):
    with torch.no_grad():
        return model(**inputs, output_attentions=True, output_hidden_states=True, return_dict=True)


def collect_outputs(out, store="all", msl=None):
    """Flatten the reference's ModelOutput into name -> tensor; returns (kept, omitted names)."""
    result, omitted = {}, []
    hidden = out.get("hidden_states")
    for key, value in out.items():
        if value is None:
            continue
        items = [(key, value)] if isinstance(value, torch.Tensor) else [
            (f"{key}.{i}", item) for i, item in enumerate(value) if item is not None]
        for name, item in items:
            keep = (store == "all" or not name.startswith(("hidden_states.", "attentions."))
                    or (store == "head" and name == f"hidden_states.{len(hidden) - 1}"
                        and "last_hidden_state" not in out))
            if keep:
                result[name] = item
            else:
                omitted.append(name)
    if store == "cls" and hidden is not None:
        for i, item in enumerate(hidden):
            result[f"hidden_states_cls.{i}"] = item[:, ::msl]
    return result, omitted


def make_case(c, ref, sha, variant, out_dir):
    from safetensors.torch import save_file
    import transformers

    model = build_model(ref, c)
    inputs, lengths = make_inputs(c, model.config)
    case_dir = out_dir / c["name"]
    case_dir.mkdir(parents=True, exist_ok=True)
    for stale in case_dir.iterdir():
        stale.unlink()
    model.save_pretrained(case_dir, safe_serialization=False)

    snaps, handles = snapshot_hooks(model)
    out = run_forward(model, inputs)
    for h in handles:
        h.remove()
    outputs, omitted = collect_outputs(out, c["store"], c["msl"])

    # hidden_states[i] is the input of layer i: compare with the clone taken when layer i was called
    hidden = out.get("hidden_states") or ()
    mutated = [i for i in range(min(len(hidden), len(snaps))) if not torch.equal(hidden[i], snaps[i])]
    for i in mutated:
        if f"hidden_states.{i}" in outputs:
            outputs[f"hidden_states_clean.{i}"] = snaps[i]
    aliased = []
    for i in range(len(hidden)):
        for j in range(i + 1, len(hidden)):
            if hidden[i].data_ptr() == hidden[j].data_ptr():
                aliased.append([i, j])

    tensors = {k: v.detach().clone().contiguous() for k, v in inputs.items()}
    tensors.update({k: v.detach().clone().contiguous() for k, v in outputs.items()})
    save_file(tensors, str(case_dir / "io.safetensors"), metadata={"case": f"{c['name']}@{sha}"})  # one key: a stable header

    sd = model.state_dict()
    info = {
        "name": c["name"],
        "class": c["cls"],
        "init_kwargs": c["init_kwargs"],
        "layout": c["layout"],
        "hidden_states_mutated": bool(mutated),
        "hidden_states_mutated_indices": mutated,
        "hidden_states_aliased": aliased,
        "commit": sha,
        "reference_variant": variant,
        "seed": c["seed"],
        "tokens": {"pad_token_id": c["tokens"]["pad"], "cls_token_id": c["tokens"]["cls"]},
        "max_sentence_length": c["msl"],
        "num_segments": c["n_segments"],
        "segment_lengths": lengths.tolist(),
        "inputs": {k: list(v.shape) for k, v in inputs.items()},
        "forward_kwargs": {"output_attentions": True, "output_hidden_states": True, "return_dict": True},
        "outputs": {k: list(v.shape) for k, v in outputs.items()},
        "outputs_omitted": omitted,
        "state_dict_keys": [[k, list(v.shape)] for k, v in sorted(sd.items())],
        "tied_keys": tied_groups(model),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "notes": " ".join(filter(None, [
            c["notes"],
            "Weights: the reference's init (initializer_range 0.2) then N(0, 0.1) noise on every parameter.",
            "hidden_states_clean.{i}: the input of layer i cloned when the layer was called, stored only where "
            "the reference's hidden_states.{i} was later overwritten in place." if mutated else "",
        ])),
    }
    (case_dir / "case.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


# ----------------------------------------------------------------------------------------------- commands


def cmd_make(args):
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.commit and args.only == "all":
        sys.exit("--commit applies to one group: pass --only current or --only legacy with it")
    selected = [c for c in CASES if (args.only == "all" or c["group"] == args.only)
                and (not args.case or c["name"] in args.case)]
    if not selected:
        sys.exit("no case selected")
    refs = {}
    for c in selected:
        commit = args.commit or (LEGACY_COMMIT if c["group"] == "legacy" else "HEAD")
        if commit not in refs:
            ref, sha, source = load_reference(args.reference, commit)
            refs[commit] = (ref, sha, variant_of(source))
        ref, sha, variant = refs[commit]
        info = make_case(c, ref, sha, variant, out_dir)
        print(f"{c['name']:22s} {c['cls']:44s} {c['layout']:14s} {sha[:7]} {variant:7s} "
              f"mutated={info['hidden_states_mutated_indices']}")


def cmd_run(args):
    ref, sha, source = load_reference(args.reference, args.commit or "HEAD")
    cls = getattr(ref, args.cls)
    init_kwargs = json.loads(args.init_kwargs) if args.init_kwargs else {}
    report = {"class": args.cls, "commit": sha, "reference_variant": variant_of(source),
              "checkpoint": str(args.checkpoint), "init_kwargs": init_kwargs}
    try:
        model, info = cls.from_pretrained(args.checkpoint, output_loading_info=True, **init_kwargs)
    except Exception as exc:  # report, don't crash: the caller wants to know why
        report["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(report, indent=1))
        return 1
    model.eval()
    for key, value in info.items():
        report[key] = sorted(map(str, value)) if isinstance(value, (set, list, tuple)) else str(value)
    tables = [m.position_embeddings.weight for m in find_layers(model) if hasattr(m, "position_embeddings")]
    report["segment_position_tables"] = len(tables)
    report["segment_position_tables_tied"] = len({t.data_ptr() for t in tables}) <= 1
    report["num_parameters"] = sum(p.numel() for p in model.parameters())
    if args.compare:
        from safetensors.torch import load_file
        stored = load_file(args.compare)
        inputs = {k: stored[k] for k in ("input_ids", "attention_mask", "labels") if k in stored}
        outputs, _ = collect_outputs(run_forward(model, inputs), "cls", model.config.max_sentence_length)
        diffs = {}
        for key, value in outputs.items():
            if key in stored and stored[key].shape == value.shape:
                diffs[key] = float((stored[key].float() - value.float()).abs().max()) if value.numel() else 0.0
            elif key in stored:
                diffs[key] = f"shape {list(value.shape)} vs stored {list(stored[key].shape)}"
        report["max_abs_diff"] = diffs
    print(json.dumps(report, indent=1))
    return 0


def main(argv=None):
    import transformers

    transformers.logging.set_verbosity_error()  # the load report is printed as JSON, not as warnings
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="write the fixtures")
    make.add_argument("--reference", required=True, help="git directory of coastalcph/hierarchical-transformers")
    make.add_argument("--commit", help="reference commit (default: HEAD for current cases, %s for legacy)"
                      % LEGACY_COMMIT)
    make.add_argument("--only", choices=("current", "legacy", "all"), default="all")
    make.add_argument("--case", action="append", choices=CASE_NAMES, help="only this case (repeatable)")
    make.add_argument("out_dir")
    run = sub.add_parser("run", help="load a checkpoint with the reference and print the load report")
    run.add_argument("--reference", required=True)
    run.add_argument("--commit", help="reference commit (default HEAD)")
    run.add_argument("--init-kwargs", help='JSON keyword arguments for the class, e.g. {"pooling": "max"}')
    run.add_argument("--compare", help="an io.safetensors whose inputs to run and outputs to compare with")
    run.add_argument("checkpoint")
    run.add_argument("cls", metavar="CLASS")
    args = parser.parse_args(argv)
    return cmd_make(args) if args.command == "make" else cmd_run(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
