"""What the frozen-encoder defaults rely on: balanced class weights in the segment classifier's loss and
the choice of the saved epoch by the lowest dev loss."""

import pytest
import torch
from torch.nn import functional as F

from longdoc import SegmentClassifier
from longdoc.families import get_family
from longdoc.tasks.classification import balanced_class_weights
from longdoc.training.save_best import SaveBest
from tiny_checkpoints import tiny_bert


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("enc") / "bert")


def test_balanced_class_weights_make_every_class_weigh_alike():
    weights = balanced_class_weights([0, 0, 0, 1], 3)
    assert weights == pytest.approx([4 / 9, 4 / 3, 1.0])  # a label without documents keeps weight 1
    assert 3 * weights[0] == pytest.approx(1 * weights[1])  # class totals equal


def test_class_weights_weigh_the_cross_entropy(encoder_dir):
    torch.manual_seed(0)
    model = SegmentClassifier.from_encoder(str(encoder_dir), num_labels=3, chunk_size=14, max_segments=8,
                                           problem_type="single_label_classification", class_weights=[0.5, 2.0, 1.0])
    vectors, mask = torch.randn(4, 3, model.config.hidden_size), torch.ones(4, 3, dtype=torch.bool)
    labels = torch.tensor([0, 1, 1, 2])
    out = model(segment_embeddings=vectors, segment_mask=mask, labels=labels)
    expected = F.cross_entropy(out.logits, labels, weight=torch.tensor([0.5, 2.0, 1.0]))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.loss.item() != pytest.approx(F.cross_entropy(out.logits, labels).item(), rel=1e-3)
    with pytest.raises(ValueError, match="one positive weight per label"):
        SegmentClassifier.from_encoder(str(encoder_dir), num_labels=3, chunk_size=14, class_weights=[1.0, 1.0])


def test_frozen_segment_defaults_save_the_epoch_of_the_lowest_dev_loss():
    defaults = get_family("segment").defaults(True)
    assert defaults.select_metric == "loss" and get_family("segment").defaults(False).select_metric == "macro_f1"
    saver = SaveBest("unused", None, defaults.select_metric)
    assert saver.improves(1.0)
    saver.best = {"loss": 1.0, "macro_f1": 0.5}
    assert saver.improves(0.9) and not saver.improves(1.1)  # lower is better
