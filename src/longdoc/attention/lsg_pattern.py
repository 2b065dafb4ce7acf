"""The LSG attention pattern: local blocks + sparse (compressed) keys + prepended global tokens.

`LSGGeometry` holds the static settings and validates them loudly; `LSGPattern` adds the
key-padding mask of one batch. `LSGPattern.sparse_windows()` gives, for every block of queries,
the positions of its sparse keys in the compressed sequence, derived with the same slicing
arithmetic as the reference implementation, so odd geometries behave identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

SPARSITY_TYPES = ("norm", "pooling", "lsh", "stride", "block_stride", "bos_pooling", "none")
MAX_GLOBAL_TOKENS = 512  # rows of the global embedding table in every published LSG checkpoint


@dataclass(frozen=True)
class LSGGeometry:
    """Static LSG settings (the `block_size`... fields of an LSG config).

    Queries are cut into blocks of `block_size`; block i sees the blocks i-1, i, i+1 (local),
    `sparse_block_size` compressed keys on each side of that window (sparse), and every global
    token. The compressed sequence is `sparsity_factor` times shorter than the input.
    """

    block_size: int = 128
    sparse_block_size: int = 128
    sparsity_factor: int = 2
    sparsity_type: str | None = "norm"
    num_global_tokens: int = 1
    lsh_num_pre_rounds: int = 1

    def __post_init__(self):
        kind = "none" if self.sparsity_type is None else self.sparsity_type
        object.__setattr__(self, "sparsity_type", kind)
        if kind not in SPARSITY_TYPES:
            raise ValueError(f"unknown sparsity_type {self.sparsity_type!r}: choose one of {', '.join(SPARSITY_TYPES)}")
        for name in ("block_size", "num_global_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_global_tokens > MAX_GLOBAL_TOKENS:
            raise ValueError(f"num_global_tokens={self.num_global_tokens}: at most {MAX_GLOBAL_TOKENS} are supported")
        if not self.has_sparse:
            return
        bs, sbs, f = self.block_size, self.sparse_block_size, self.sparsity_factor
        if sbs < 1 or f < 1:
            raise ValueError(
                f"sparse_block_size ({sbs}) and sparsity_factor ({f}) must be >= 1 for sparsity_type={kind!r}; "
                f"use sparsity_type='none' (or sparse_block_size=0) for local + global attention only"
            )
        if bs % f:
            works = [d for d in range(1, bs + 1) if bs % d == 0]
            raise ValueError(
                f"block_size ({bs}) must be a multiple of sparsity_factor ({f}): with block_size {bs} use a "
                f"sparsity_factor in {works}, or a block_size that is a multiple of {f} (e.g. {f * max(1, bs // f)})"
            )
        step = bs // f
        if step % 2 and step != 1:
            evens = [d for d in range(1, bs + 1) if bs % d == 0 and (bs // d) % 2 == 0 or bs == d]
            raise ValueError(
                f"block_size / sparsity_factor = {bs}/{f} = {step} compressed keys per block: it must be even or 1 "
                f"(the sparse windows are centred on the block); with block_size {bs} use a sparsity_factor in "
                f"{evens}, or a block_size that is an even multiple of {f} (e.g. {2 * f * max(1, bs // (2 * f))})"
            )
        chunk = min(bs, sbs)
        if kind in ("norm", "lsh") and f > 1 and (bs % chunk or chunk % f):
            raise ValueError(
                f"sparsity_type={kind!r} picks keys per chunk of min(block_size, sparse_block_size)={chunk} tokens: "
                f"it must divide block_size ({bs}) and be a multiple of sparsity_factor ({f}); e.g. use "
                f"sparse_block_size={bs}"
            )

    @property
    def has_sparse(self) -> bool:
        return self.sparsity_type != "none" and bool(self.sparse_block_size) and self.sparsity_factor > 0

    @property
    def compressed_block(self) -> int:
        """Compressed keys per block of queries."""
        return self.block_size // self.sparsity_factor

    def sparse_offsets(self) -> tuple[torch.Tensor, int]:
        """(offsets (S,), pad): block i's sparse keys sit at compressed positions i * compressed_block - pad + offsets.

        Derived with the reference's own arithmetic (it unfolds windows of 6 sparse blocks over the
        compressed sequence padded by `pad`, then slices the left and right keys out of each window)."""
        step, sbs = self.compressed_block, self.sparse_block_size
        size = 6 * sbs
        odd = step % 2
        pad = (size - step) // 2 + odd
        u = (size - self.block_size * 3 // self.sparsity_factor) // 2 + odd
        offsets = torch.arange(size)
        # the reference's slices (Python semantics, negative bounds included): left keys, right keys
        return torch.cat([offsets[u - sbs:u], offsets[-(u + odd):-(u + odd) + sbs]]), pad

    def uses_full_attention(self, length: int) -> bool:
        """Inputs of at most two blocks are attended densely (local attention would cover them anyway)."""
        return length <= 2 * self.block_size

    def padded_length(self, length: int, adaptive: bool) -> int:
        """Length after `adaptive` padding to a multiple of the block (only inputs that leave full attention)."""
        if self.uses_full_attention(length) or length % self.block_size == 0:
            return length
        if not adaptive:
            raise ValueError(
                f"input of {length} tokens is not a multiple of block_size ({self.block_size}) and adaptive=False: "
                f"pad the input to a multiple of {self.block_size}, or set adaptive=True in the config"
            )
        return length + self.block_size - length % self.block_size


@dataclass
class LSGPattern:
    """One batch under an LSG geometry.

    geometry: LSGGeometry
    is_key:   (B, T) bool over the (padded) non-global tokens: True where a token may be attended
              (real and not masked by `mask_first_token`).
    globals_visible: whether the G global tokens may be attended: True (always), False (only to check
              a conversion: the model must then equal its source), or a (B, G) bool tensor per row
              (question tokens made global: a shorter question leaves empty slots).
    """

    geometry: LSGGeometry
    is_key: torch.Tensor
    globals_visible: bool | torch.Tensor = True
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def length(self) -> int:
        return self.is_key.shape[1]

    @property
    def num_blocks(self) -> int:
        return self.length // self.geometry.block_size

    def global_key_mask(self) -> torch.Tensor:
        """(B, G) bool: which global tokens may be attended."""
        visible = self.globals_visible
        shape = (self.is_key.shape[0], self.geometry.num_global_tokens)
        if isinstance(visible, torch.Tensor):
            if tuple(visible.shape) != shape:
                raise ValueError(f"globals_visible has shape {tuple(visible.shape)}, expected {shape} (batch, globals)")
            return visible.to(device=self.is_key.device, dtype=torch.bool)
        return torch.full(shape, bool(visible), dtype=torch.bool, device=self.is_key.device)

    def full_key_mask(self) -> torch.Tensor:
        """(B, G + T) bool: the key mask with the global tokens in front."""
        if "full" not in self.cache:
            self.cache["full"] = torch.cat([self.global_key_mask(), self.is_key], dim=1)
        return self.cache["full"]

    def sparse_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions in the compressed sequence of each block's sparse keys, and whether they exist.

        Returns (positions (nb, S) long clamped into range, inside (nb, S) bool), S = 2 * sparse_block_size
        (left keys, then right keys) or fewer where the reference's slicing drops some.
        """
        if "windows" in self.cache:
            return self.cache["windows"]
        g = self.geometry
        chosen, pad = g.sparse_offsets()
        step = g.compressed_block
        compressed = self.num_blocks * step
        starts = torch.arange(self.num_blocks) * step - pad  # (nb,)
        positions = starts[:, None] + chosen[None, :]  # (nb, S)
        inside = (positions >= 0) & (positions < compressed)
        result = (positions.clamp(0, max(compressed - 1, 0)).to(self.is_key.device), inside.to(self.is_key.device))
        self.cache["windows"] = result
        return result
