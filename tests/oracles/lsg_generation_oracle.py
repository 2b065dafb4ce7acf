"""Runs inside the oracle virtualenv (lsg-converter 0.1.9, transformers 4.36.2): never imports longdoc.

    python lsg_generation_oracle.py CASES.json OUT

For every case (tests/lsg_generation_cases.py): an LSGBartForConditionalGeneration with random weights, saved
(save_pretrained) to OUT/<name> with `oracle.pt`: the padded batch, lsg-converter's generate() token ids for
the batch and for every row alone (its padding cut off), and its teacher-forced logits along the batch's
greedy ids.
"""

import json
import sys
from pathlib import Path

import torch

from lsg_converter.bart.modeling_lsg_bart import LSGBartConfig, LSGBartForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the cases' inputs, shared with longdoc's side
from lsg_generation_cases import make_inputs  # noqa: E402


def generate(model, ids, mask, settings):
    # lsg-converter's encoder writes mask_first_token into the mask it is given: hand it a copy
    return model.generate(input_ids=ids, attention_mask=mask.clone(), **settings)


def outputs_of(model, case, ids, mask):
    batched, alone = [], []
    for settings in case["generate"]:
        batched.append(generate(model, ids, mask, settings))
        alone.append([generate(model, ids[i:i + 1, :n], mask[i:i + 1, :n], settings)[0]
                      for i, n in enumerate(case["lengths"])])
    logits = model(input_ids=ids, attention_mask=mask.clone(), decoder_input_ids=batched[0]).logits
    return {"batched": batched, "alone": alone, "logits": logits}


def main(cases, out):
    for case in cases:
        print("case", case["name"], file=sys.stderr, flush=True)
        torch.manual_seed(case["seed"])
        config = LSGBartConfig(**case["config"])
        model = LSGBartForConditionalGeneration(config).eval()
        folder = out / case["name"]
        model.save_pretrained(folder, safe_serialization=True)
        ids, mask = make_inputs(case)
        with torch.no_grad():
            outputs = outputs_of(model, case, ids, mask)
        torch.save({"input_ids": ids, "attention_mask": mask, **outputs}, folder / "oracle.pt")


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
