"""The attention dropout's mask (random bits compared with a threshold, not torch.rand's floats)."""

import pytest
import torch

from longdoc.attention.sliding_window import _drop_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.03])
def test_drop_mask_drops_a_fraction_p_in_any_shape(p):
    torch.manual_seed(0)
    shape = (3, 7, 1001, 97)  # odd element count: the last 32-bit draw is half of a 64-bit one
    mask = _drop_mask(shape, p, "cpu")
    assert mask.shape == shape and mask.dtype == torch.bool
    n = mask.numel()
    assert abs(mask.float().mean().item() - p) < 6 * (p * (1 - p) / n) ** 0.5  # 6 standard deviations
    # no position is biased: both 32-bit halves of each draw, and the start and end, drop alike
    flat = mask.flatten()
    for part in (flat[0::2], flat[1::2], flat[: n // 10], flat[-n // 10 :]):
        assert abs(part.float().mean().item() - p) < 6 * (p * (1 - p) / part.numel()) ** 0.5


def test_drop_mask_follows_the_seed():
    torch.manual_seed(5)
    a = _drop_mask((4, 33), 0.3, "cpu")
    torch.manual_seed(5)
    assert torch.equal(a, _drop_mask((4, 33), 0.3, "cpu"))
    assert not torch.equal(a, _drop_mask((4, 33), 0.3, "cpu"))
