"""Typed attention patterns.

Every family describes *who may attend to whom* with these objects instead of magic numbers
(Longformer's 0/1/2 masks and -10000/+10000 biases stop at the model's API boundary).
Each pattern can `materialize()` itself as a dense boolean matrix: tests hold every fast
kernel to the dense oracle through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch


@dataclass(frozen=True)
class SlidingWindow:
    """A symmetric local window. `window` is the FULL window (Longformer's `attention_window`):
    a query at i sees keys j with |i - j| <= window // 2."""

    window: int

    def __post_init__(self):
        if isinstance(self.window, bool) or not isinstance(self.window, int):
            raise ValueError(f"attention window must be an int, got {self.window!r}")
        if self.window <= 0 or self.window % 2:
            raise ValueError(
                f"attention window must be a positive even number (it is the full window, "
                f"both sides together), got {self.window}; use e.g. {max(2, self.window + self.window % 2)}"
            )

    @property
    def one_sided(self) -> int:
        return self.window // 2


@dataclass
class GlobalTokens:
    """Positions with global attention, per batch row, as a padded index list.

    indices: (B, G) long, positions of the global tokens (padding slots hold 0)
    valid:   (B, G) bool, False on padding slots (rows may have different counts, or none)
    """

    indices: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def from_mask(cls, is_global: torch.Tensor) -> "GlobalTokens":
        """From a (B, T) bool mask. Keeps the order of positions, like `transformers`."""
        is_global = is_global.bool()
        counts = is_global.sum(dim=1)  # (B,)
        g = int(counts.max()) if is_global.numel() else 0
        # stable sort puts global positions first, in increasing order
        order = torch.sort((~is_global).to(torch.int8), dim=1, stable=True).indices[:, :g]
        valid = torch.arange(g, device=is_global.device)[None, :] < counts[:, None]
        return cls(indices=torch.where(valid, order, 0), valid=valid)

    @property
    def count(self) -> int:
        return self.indices.shape[1]

    def to_mask(self, seq_len: int) -> torch.Tensor:
        """(B, T) bool mask of global positions."""
        b = self.indices.shape[0]
        counts = torch.zeros(b, seq_len, dtype=torch.int32, device=self.indices.device)
        # accumulate: padding slots point at position 0 too and must not overwrite a real global there
        return counts.scatter_add_(1, self.indices, self.valid.int()) > 0


@dataclass
class LongformerPattern:
    """Sliding window + global tokens + key padding: the whole Longformer attention pattern.

    window:   SlidingWindow
    is_token: (B, T) bool, True for real tokens, False for padding
    globals:  GlobalTokens (global tokens are always real tokens)
    """

    window: SlidingWindow
    is_token: torch.Tensor
    globals: GlobalTokens
    # derived tensors (block masks...) shared by every layer of one forward pass
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def with_window(self, window: SlidingWindow) -> "LongformerPattern":
        """The same tokens under another window (per-layer windows); shares the cache."""
        return LongformerPattern(window, self.is_token, self.globals, self.cache)

    @classmethod
    def build(cls, window: int | SlidingWindow, is_token: torch.Tensor, is_global: torch.Tensor | None = None):
        if not isinstance(window, SlidingWindow):
            window = SlidingWindow(window)
        is_token = is_token.bool()
        if is_global is None:
            is_global = torch.zeros_like(is_token)
        if is_global.shape != is_token.shape:
            raise ValueError(
                f"global mask shape {tuple(is_global.shape)} does not match token mask shape {tuple(is_token.shape)}"
            )
        return cls(window, is_token, GlobalTokens.from_mask(is_global.bool() & is_token))

    @cached_property
    def is_global(self) -> torch.Tensor:
        return self.globals.to_mask(self.is_token.shape[1])

    def materialize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense (B, T, T) bool masks `(local_rows, global_rows)`: which keys each query may see
        in the local computation, and in the global-row computation (global projections)."""
        t = self.is_token.shape[1]
        pos = torch.arange(t, device=self.is_token.device)
        in_band = (pos[:, None] - pos[None, :]).abs() <= self.window.one_sided  # (T, T)
        is_global = self.is_global
        key_local = self.is_token & ~is_global  # band keys must be real and not global
        local = (in_band[None] & key_local[:, None, :]) | is_global[:, None, :]
        global_rows = self.is_token[:, None, :].expand(-1, t, -1)
        return local, global_rows
