"""Runs inside the QA oracle virtualenv (`.venv-qa`, transformers 4.57): never imports longdoc.

    python qa_longformer_oracle.py make CONFIG.json OUT   build a LongformerForQuestionAnswering with random
                                                          weights (seeded), save it in OUT, and its logits on
                                                          OUT/inputs.pt in OUT/outputs.pt
    python qa_longformer_oracle.py run DIR                load the checkpoint in DIR (saved by longdoc) with
                                                          from_pretrained(output_loading_info=True) and save its
                                                          logits on DIR/inputs.pt and the loading info in
                                                          DIR/outputs.pt

inputs.pt holds the keyword arguments of forward (input_ids, attention_mask, and where given
token_type_ids / global_attention_mask; without a global mask transformers places its own on the
question, which needs exactly three separators per row).
"""

import json
import sys
from pathlib import Path

import torch
import transformers


def logits(model, inputs: dict) -> dict:
    with torch.no_grad():
        out = model(**inputs, return_dict=True)
    return {"start_logits": out.start_logits, "end_logits": out.end_logits}


def make(config_path: Path, out: Path) -> None:
    fields = json.loads(config_path.read_text())
    torch.manual_seed(fields.pop("seed", 0))
    model = transformers.LongformerForQuestionAnswering(transformers.LongformerConfig(**fields)).eval()
    model.save_pretrained(out)
    torch.save(logits(model, torch.load(out / "inputs.pt")), out / "outputs.pt")


def run(folder: Path) -> None:
    model, info = transformers.LongformerForQuestionAnswering.from_pretrained(folder, output_loading_info=True)
    result = logits(model.eval(), torch.load(folder / "inputs.pt"))
    result.update({key: sorted(info[key]) for key in ("missing_keys", "unexpected_keys", "mismatched_keys")})
    result["transformers_version"] = transformers.__version__
    torch.save(result, folder / "outputs.pt")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "make":
        make(Path(args[0]), Path(args[1]))
    elif mode == "run":
        run(Path(args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: make CONFIG.json OUT, or run DIR")
