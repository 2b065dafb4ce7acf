"""Stand-ins for the PyTorch models that run exported graphs with onnxruntime.

An `OnnxModel` is called as the family's model is (`model(input_ids=..., attention_mask=...)`, the
segment classifier's `encode_segments` and `model(segment_embeddings=..., segment_mask=...)`) and
returns the same output records with torch tensors, so the families' prediction code and the
pipelines run on it unchanged: pre- and post-processing are literally the same code. It checks the
inputs the graphs cannot (lengths, token ids, segment counts) with the models' own messages, and
fills in the inputs the models default (Longformer's global attention).
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.outputs import QuestionAnsweringOutput, SequenceClassifierOutput
from .manifest import graph_file

UNSUPPORTED = ("inputs_embeds", "position_ids", "head_mask", "labels", "start_positions", "end_positions")


def session(path, threads: int | None = None):
    """An onnxruntime CPU session of one graph file."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # warnings about unused initializers and the like are not the user's business
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def _refuse(kwargs: dict, what: str) -> None:
    given = [name for name in UNSUPPORTED if kwargs.get(name) is not None]
    if kwargs.get("output_hidden_states"):
        given.append("output_hidden_states")
    if given:
        raise ValueError(f"an exported {what} takes token ids and masks only, not {', '.join(given)}: use the PyTorch "
                         f"model for training and for hidden states")


class OnnxModel:
    """What the pipelines read of a model: `config`, `device` (cpu), `dtype`, `eval()`, `train(False)`,
    `to("cpu")`, and calling it. `sessions`: graph name -> onnxruntime session."""

    device = torch.device("cpu")
    dtype = torch.float32
    training = False
    graphs: tuple[str, ...] = ("model",)

    def __init__(self, config, sessions: dict, folder: str = "", precision: str = "fp32"):
        self.config, self.sessions = config, sessions
        self.name_or_path, self.precision = folder, precision

    @classmethod
    def load(cls, folder, manifest: dict, config, precision: str, threads: int | None = None) -> "OnnxModel":
        sessions = {graph: session(graph_file(folder, manifest, graph, precision), threads) for graph in cls.graphs}
        return cls(config, sessions, str(folder), precision)

    def eval(self) -> "OnnxModel":
        return self

    def train(self, mode: bool = True) -> "OnnxModel":
        if mode:
            raise ValueError("an exported ONNX model cannot be trained: train the PyTorch model, then export it again")
        return self

    def to(self, device=None, *args, **kwargs) -> "OnnxModel":
        if device is not None and not isinstance(device, torch.dtype) and torch.device(device).type != "cpu":
            raise ValueError(f"exported models run on onnxruntime's CPU provider, not on {device}: leave the device "
                             f"unset (or 'cpu')")
        return self

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(out) for out in self.sessions[graph].run(None, feeds)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name_or_path!r}, {self.precision})"


class OnnxSequenceModel(OnnxModel):
    """A whole-sequence classifier or QA model (one graph: ids and masks in, logits out)."""

    inputs: tuple[str, ...] = ("input_ids", "attention_mask")
    what = "model"

    def __init__(self, config, sessions: dict, folder: str = "", precision: str = "fp32"):
        from ..families import head_of_config

        super().__init__(config, sessions, folder, precision)
        self.head = head_of_config({"architectures": config.architectures, "model_type": config.model_type})

    def default_inputs(self, input_ids: torch.Tensor, given: dict) -> dict:
        """Inputs the caller left out, as the PyTorch model fills them in."""
        ones = torch.ones_like(input_ids)
        return {"attention_mask": ones, "token_type_ids": torch.zeros_like(input_ids)}

    def check(self, input_ids: torch.Tensor) -> None:
        vocabulary = self.config.vocab_size
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocabulary):
            bad = int(input_ids.min()) if int(input_ids.min()) < 0 else int(input_ids.max())
            raise ValueError(f"token id {bad} is outside [0, {vocabulary}): check that the tokenizer matches this "
                             f"model")

    def __call__(self, input_ids=None, attention_mask=None, output_attentions=None, return_dict=None, **kwargs):
        _refuse(kwargs, self.what)
        if output_attentions:
            raise ValueError(f"an exported {self.what} gives no attention probabilities: use the PyTorch model")
        if input_ids is None:
            raise ValueError("give input_ids (batch, tokens)")
        input_ids = torch.as_tensor(input_ids)
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
        given = {"attention_mask": attention_mask, **{k: v for k, v in kwargs.items() if k in self.inputs}}
        unknown = sorted(set(kwargs) - set(self.inputs) - set(UNSUPPORTED) - {"output_hidden_states"})
        if unknown:
            raise TypeError(f"unexpected inputs {unknown}; an exported {self.what} takes {', '.join(self.inputs)}")
        for name, value in given.items():
            if value is not None and tuple(torch.as_tensor(value).shape) != tuple(input_ids.shape):
                raise ValueError(f"{name} has shape {tuple(torch.as_tensor(value).shape)} but the input has shape "
                                 f"{tuple(input_ids.shape)} (batch, tokens): give one value per token")
        self.check(input_ids)
        defaults = self.default_inputs(input_ids, given)
        feeds = {name: _numpy(given[name] if given.get(name) is not None else defaults[name], np.int64)
                 for name in self.inputs if name != "input_ids"}
        feeds["input_ids"] = _numpy(input_ids, np.int64)
        outputs = self.run("model", feeds)
        if self.head == "spans":
            return QuestionAnsweringOutput(start_logits=outputs[0], end_logits=outputs[1])
        return SequenceClassifierOutput(logits=outputs[0])


class OnnxLongformer(OnnxSequenceModel):
    """A Longformer's graph; global attention defaults as the model's: the first token for
    classification, the question (every token before the first separator) for QA."""

    inputs = ("input_ids", "attention_mask", "global_attention_mask", "token_type_ids")
    what = "Longformer"

    def default_inputs(self, input_ids, given):
        defaults = super().default_inputs(input_ids, given)
        if self.head == "spans":
            from ..models.longformer_heads import question_global_mask

            defaults["global_attention_mask"] = question_global_mask(input_ids, self.config.sep_token_id)
        else:
            first = torch.zeros_like(input_ids)
            first[:, 0] = 1
            defaults["global_attention_mask"] = first
        return defaults

    def check(self, input_ids):
        super().check(input_ids)
        if input_ids.shape[1] > self.config.max_tokens:
            length = input_ids.shape[1]
            raise ValueError(
                f"input of {length} tokens is longer than this model's {self.config.max_tokens} tokens. Truncate the "
                f"input, or convert to a longer model: `longdoc convert --to longformer SRC OUT --max-length {length}`")


class OnnxHAT(OnnxSequenceModel):
    """A HAT's graph: inputs of whole segments, at most max_sentences of them (the model's own checks)."""

    inputs = ("input_ids", "attention_mask", "token_type_ids")
    what = "HAT"

    def check(self, input_ids):
        from ..models.hat import check_hat_inputs

        super().check(input_ids)
        check_hat_inputs(self.config, input_ids, None, {})

    def __call__(self, *args, **kwargs):
        out = super().__call__(*args, **kwargs)
        if self.head in ("classification", "sentences"):
            from ..models.hat_heads import HATOutput

            return HATOutput(logits=out.logits)
        return out


class OnnxSegmentClassifier(OnnxModel):
    """The segment classifier as two graphs: `encode_segments` (the encoder) and calls on segment
    vectors (the head); calls on packed segment token ids run both, as the model does."""

    graphs = ("segment_encoder", "segment_head")

    def encode_segments(self, input_ids, attention_mask) -> torch.Tensor:
        """(S, L) token ids of S segments -> (S, C) segment vectors."""
        ids = torch.as_tensor(input_ids)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.encoder["vocab_size"]):
            raise ValueError(f"token ids must lie in [0, {self.config.encoder['vocab_size']}): check that the "
                             f"tokenizer matches this model")
        feeds = {"input_ids": _numpy(ids, np.int64), "attention_mask": _numpy(attention_mask, np.int64)}
        return self.run("segment_encoder", feeds)[0]

    def __call__(self, input_ids=None, attention_mask=None, segment_mask=None, segment_embeddings=None,
                 output_attentions=None, return_dict=None, **kwargs):
        from ..models.segment_classifier import SegmentClassifierOutput

        _refuse(kwargs, "segment classifier")
        vectors, segment_mask = self._segment_vectors(input_ids, attention_mask, segment_mask, segment_embeddings)
        logits, weights = self.run("segment_head", {"segment_embeddings": _numpy(vectors, np.float32),
                                                    "segment_mask": _numpy(segment_mask, np.bool_)})
        keep = output_attentions if output_attentions is not None else self.config.output_attentions
        segment = self.config.method == "segment"
        return SegmentClassifierOutput(
            logits=logits,
            label_attentions=weights if keep and segment else None,
            segment_logits=weights if keep and not segment else None,
            segment_mask=torch.as_tensor(segment_mask).bool() if keep else None,
        )

    def _segment_vectors(self, input_ids, attention_mask, segment_mask, segment_embeddings):
        """(B, N, C) vectors and (B, N) bool mask, checked as SegmentClassifier._segment_vectors checks them."""
        if segment_embeddings is not None:
            vectors = torch.as_tensor(segment_embeddings).float()
            mask = (torch.ones(vectors.shape[:2], dtype=torch.bool) if segment_mask is None
                    else torch.as_tensor(segment_mask).bool())
        else:
            if input_ids is None:
                raise ValueError("give input_ids (segment token ids) or segment_embeddings")
            ids = torch.as_tensor(input_ids)
            attention = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask)
            if ids.dim() == 3:  # (B, N, L) padded: real segments are those with any real token
                mask = attention.bool().any(-1) if segment_mask is None else torch.as_tensor(segment_mask).bool()
                ids, attention = ids[mask], attention[mask]
            else:
                mask = (torch.ones(ids.shape[0], 1, dtype=torch.bool) if segment_mask is None
                        else torch.as_tensor(segment_mask).bool())
            if int(mask.sum()) != ids.shape[0]:
                raise ValueError(f"segment_mask marks {int(mask.sum())} real segments but input_ids holds "
                                 f"{ids.shape[0]}: pack exactly the real segments, in document order")
            encoded = self.encode_segments(ids, attention)
            vectors = encoded.new_zeros(*mask.shape, encoded.shape[-1])
            vectors[mask] = encoded
        limit = self.config.max_segments
        if vectors.shape[1] > limit:
            raise ValueError(f"documents have {vectors.shape[1]} segments but the model has positions for {limit}; "
                             f"segment with max_segments={limit}")
        if not bool(mask[:, 0].all()):
            raise ValueError("every document needs at least one segment, in its first slot")
        return vectors, mask


STAND_INS = {"longformer": OnnxLongformer, "hat": OnnxHAT, "segment": OnnxSegmentClassifier,
             "chunk-pool": OnnxSegmentClassifier, "truncate": OnnxSegmentClassifier}
