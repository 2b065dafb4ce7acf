"""Our LSG models against lsg-converter's own models on the same random weights, both ways:
its checkpoints load in longdoc and give its outputs; what longdoc saves loads in lsg-converter.

The oracle runs in its own virtualenv (`.venv-lsg`, built by `make test`: lsg-converter 0.1.9
needs transformers 4.36.2)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import longdoc
from lsg_oracle_cases import cases

ROOT = Path(__file__).resolve().parents[1]
ORACLE_PYTHON = Path(os.environ.get("LONGDOC_LSG_ORACLE", ROOT / ".venv-lsg" / "bin" / "python"))
ORACLE_SCRIPT = ROOT / "tests" / "oracles" / "lsg_oracle.py"
CASES = cases()
FAMILY_PREFIX = {"bert": "LSGBert", "roberta": "LSGRoberta", "bart": "LSGBart"}

if not ORACLE_PYTHON.exists():
    if os.environ.get("LONGDOC_REQUIRE_ORACLE"):
        raise RuntimeError(f"the lsg-converter oracle is missing at {ORACLE_PYTHON}: run `make oracle`")
    pytest.skip(f"lsg-converter oracle not installed at {ORACLE_PYTHON} (`make oracle` builds it)",
                allow_module_level=True)


def _oracle(mode: str, folder: Path) -> None:
    spec = folder / "cases.json"
    spec.write_text(json.dumps(CASES))
    result = subprocess.run([str(ORACLE_PYTHON), str(ORACLE_SCRIPT), mode, str(spec), str(folder)],
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"lsg-converter oracle failed:\n{result.stderr[-4000:]}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lsg-reference")
    _oracle("make", folder)
    return folder


def _ours(case):
    return getattr(longdoc, FAMILY_PREFIX[case["family"]] + case["head"])


def _outputs(model, case, inputs) -> dict:
    with torch.no_grad():
        out = model(**inputs, return_dict=True)
        result = {name: getattr(out, name) for name in ("last_hidden_state", "pooler_output", "logits",
                                                        "start_logits", "end_logits", "encoder_last_hidden_state")
                  if getattr(out, name, None) is not None}
        for index, settings in enumerate(case.get("generate") or []):
            result[f"generate{index}"] = model.generate(input_ids=inputs["input_ids"],
                                                        attention_mask=inputs["attention_mask"], **settings)
    return result


def _compare(ours: dict, theirs: dict, case) -> None:
    assert set(theirs) <= set(ours), f"{case['name']}: missing outputs {set(theirs) - set(ours)}"
    for name, expected in theirs.items():
        if name.startswith("generate"):
            assert ours[name].tolist() == expected.tolist(), f"{case['name']}: {name} token ids differ"
        else:
            torch.testing.assert_close(ours[name], expected, atol=1e-4, rtol=0, msg=lambda m: f"{case['name']} "
                                       f"{name}: {m}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_lsg_converter_checkpoint_gives_its_outputs(reference, case):
    folder = reference / case["name"]
    saved = torch.load(folder / "oracle.pt")
    model = _ours(case).from_pretrained(folder).eval()
    _compare(_outputs(model, case, saved["inputs"]), saved["outputs"], case)


def test_what_we_save_loads_in_lsg_converter(reference, tmp_path):
    ours = {}
    for case in CASES:
        source = reference / case["name"]
        saved = torch.load(source / "oracle.pt")
        model = _ours(case).from_pretrained(source).eval()
        target = tmp_path / case["name"]
        model.save_pretrained(target)
        torch.save(saved["inputs"], target / "inputs.pt")
        ours[case["name"]] = _outputs(model, case, saved["inputs"])
    _oracle("run", tmp_path)
    for case in CASES:
        _compare(ours[case["name"]], torch.load(tmp_path / case["name"] / "oracle_outputs.pt"), case)
