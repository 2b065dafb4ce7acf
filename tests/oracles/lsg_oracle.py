"""Runs inside the oracle virtualenv (lsg-converter 0.1.9, transformers 4.36.2): never imports longdoc.

    python lsg_oracle.py make CASES.json OUT      build lsg-converter models with random weights, save them
                                                  (save_pretrained) with inputs and their outputs
    python lsg_oracle.py run CASES.json DIR       load the checkpoints in DIR (written by longdoc) with
                                                  lsg-converter and save its outputs on the saved inputs

A case: {"name", "family": bert|roberta|bart, "head": class suffix, "config": {...}, "lengths": [...],
"total": padded batch length, "choices": n (multiple choice), "generate": [{...}, ...] (BART),
"token_types": true (random token_type_ids)}.
"""

import json
import sys
from pathlib import Path

import torch

from lsg_converter.bart import modeling_lsg_bart as bart
from lsg_converter.bert import modeling_lsg_bert as bert
from lsg_converter.roberta import modeling_lsg_roberta as roberta

FAMILIES = {
    "bert": (bert, "LSGBert", bert.LSGBertConfig),
    "roberta": (roberta, "LSGRoberta", roberta.LSGRobertaConfig),
    "bart": (bart, "LSGBart", bart.LSGBartConfig),
}


def model_class(case):
    module, prefix, _ = FAMILIES[case["family"]]
    return getattr(module, prefix + case["head"])


def make_inputs(case, config):
    gen = torch.Generator().manual_seed(case.get("seed", 0) + 1000)
    lengths, total = case["lengths"], case["total"]
    pad = config.pad_token_id
    ids = torch.randint(5, config.vocab_size, (len(lengths), total), generator=gen)
    mask = (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]).long()
    if case["family"] == "bart":
        ids[torch.arange(len(lengths)), torch.tensor(lengths) - 1] = config.eos_token_id
    ids = ids.masked_fill(mask == 0, pad)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if case.get("token_types"):
        inputs["token_type_ids"] = torch.randint(0, config.type_vocab_size, ids.shape, generator=gen)
    if case["head"] in ("Model", "ForConditionalGeneration") and case["family"] == "bart":
        inputs["decoder_input_ids"] = torch.randint(5, config.vocab_size, (len(lengths), 7), generator=gen)
    if case.get("choices"):
        inputs = {k: v[:, None].expand(-1, case["choices"], -1).contiguous() for k, v in inputs.items()}
        inputs["input_ids"] = torch.randint(5, config.vocab_size, inputs["input_ids"].shape, generator=gen).masked_fill(
            inputs["attention_mask"] == 0, pad)
    return inputs


def outputs_of(model, case, inputs):
    with torch.no_grad():
        out = model(**inputs, return_dict=True)
        result = {}
        for name in ("last_hidden_state", "pooler_output", "logits", "start_logits", "end_logits",
                     "encoder_last_hidden_state"):
            value = getattr(out, name, None)
            if value is not None:
                result[name] = value
        for index, settings in enumerate(case.get("generate", [])):
            result[f"generate{index}"] = model.generate(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **settings)
    return result


def make(cases, out):
    for case in cases:
        print("case", case["name"], file=sys.stderr, flush=True)
        _, _, config_class = FAMILIES[case["family"]]
        torch.manual_seed(case.get("seed", 0))
        config = config_class(**case["config"])
        model = model_class(case)(config).eval()
        folder = out / case["name"]
        model.save_pretrained(folder, safe_serialization=True)
        inputs = make_inputs(case, config)
        torch.save({"inputs": inputs, "outputs": outputs_of(model, case, inputs)}, folder / "oracle.pt")


def run(cases, folder):
    for case in cases:
        print("case", case["name"], file=sys.stderr, flush=True)
        path = folder / case["name"]
        model = model_class(case).from_pretrained(path).eval()
        inputs = torch.load(path / "inputs.pt")
        torch.save(outputs_of(model, case, inputs), path / "oracle_outputs.pt")


if __name__ == "__main__":
    mode, cases_file, target = sys.argv[1:4]
    cases = json.loads(Path(cases_file).read_text())
    {"make": make, "run": run}[mode](cases, Path(target))
