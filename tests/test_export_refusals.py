"""What `longdoc export` refuses, before any model is loaded, and the errors of folders that are not exports."""

import json

import pytest

from longdoc.cli import main
from longdoc.errors import DataError
from longdoc.export import ExportRefused, export_onnx, load_onnx_pipeline


def model_folder(tmp_path, name, **config):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("config,reason", [
    ({"model_type": "bert", "block_size": 128, "architectures": ["LSGBertForSequenceClassification"]},
     r"cannot export the lsg classification model .*one of two paths by the input.s length"),
    ({"model_type": "bart", "block_size": 128, "is_encoder_decoder": True,
      "architectures": ["LSGBartForConditionalGeneration"]}, r"lsg seq2seq model .*generates text in a loop"),
    ({"model_type": "longformer", "architectures": ["LongformerForTokenClassification"]},
     r"longformer tokens model .*no longdoc pipeline reads token-classification models"),
    ({"model_type": "longformer", "architectures": ["LongformerModel"]}, r"a longformer encoder without a task head"),
    ({"model_type": "bert", "architectures": ["BertForSequenceClassification"]}, r"not a model of a longdoc family"),
])
def test_refused_with_the_family_and_the_reason(tmp_path, config, reason):
    with pytest.raises(ExportRefused, match=reason):
        export_onnx(model_folder(tmp_path, "model", **config), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_command_says_why_and_fails(tmp_path, capsys):
    folder = model_folder(tmp_path, "lsg", model_type="bert", block_size=64,
                          architectures=["LSGBertForQuestionAnswering"])
    assert main(["export", str(folder), str(tmp_path / "out"), "--format", "onnx"]) == 1
    assert "longdoc export: error: cannot export the lsg spans model" in capsys.readouterr().err


def test_bad_settings_and_folders(tmp_path):
    folder = model_folder(tmp_path, "model", model_type="longformer",
                          architectures=["LongformerForSequenceClassification"])
    with pytest.raises(ValueError, match="--quantize int4: use one of int8"):
        export_onnx(folder, tmp_path / "out", quantize="int4")
    with pytest.raises(ValueError, match="--opset 13: the exporter writes opset 18 and later"):
        export_onnx(folder, tmp_path / "out", opset=13)
    with pytest.raises(ValueError, match="--format tflite: longdoc exports onnx"):
        export_onnx(folder, tmp_path / "out", format="tflite")
    with pytest.raises(ValueError, match="is the model folder itself"):
        export_onnx(folder, folder)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not an earlier export"):
        export_onnx(folder, busy)
    assert (busy / "notes.txt").read_text() == "mine"


def test_a_pytorch_model_folder_is_not_an_export(tmp_path):
    folder = model_folder(tmp_path, "model", model_type="longformer",
                          architectures=["LongformerForSequenceClassification"])
    with pytest.raises(DataError, match=r"not a folder `longdoc export` wrote .*longdoc export MODEL_DIR OUT_DIR"):
        load_onnx_pipeline(folder)
    with pytest.raises(ValueError, match="CPU provider, not on cuda"):
        load_onnx_pipeline(folder, device="cuda")
