"""LSG attention (local blocks + sparse compressed keys + global tokens), as pure functions.

Shapes: B batch, H heads, G global tokens, T tokens (a multiple of the block), D head size,
nb = T / block_size blocks, Tc = T / sparsity_factor compressed keys.

Each sparsity type is one small function `(q, k, v, is_key, geometry) -> (k_c, v_c, valid_c)`
that compresses the token keys into Tc keys. `lsg_attention` then lets every block of queries
attend to [G globals | 2 * sparse_block_size compressed keys | 3 * block_size local keys]
in one fused softmax (scaled_dot_product_attention over the blocked keys).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .lsg_bias import LSGPositionBias
from .lsg_pattern import LSGGeometry, LSGPattern

SparseKeys = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (B, H, Tc, D), (B, H, Tc, D), (B, 1|H, Tc) bool


def _all_keys(k, v, is_key) -> SparseKeys:
    """sparsity_factor 1: every token is its own compressed key."""
    return k, v, is_key[:, None]


def sparse_norm(q, k, v, is_key, geometry: LSGGeometry) -> SparseKeys:
    """Per chunk of min(block, sparse block) tokens, the block/f keys of highest L2 norm."""
    f = geometry.sparsity_factor
    if f == 1:
        return _all_keys(k, v, is_key)
    b, h, t, d = k.shape
    chunk = min(geometry.block_size, geometry.sparse_block_size)
    keep = chunk // f
    with torch.no_grad():
        norms = k.detach().norm(dim=-1) * is_key[:, None]  # (B, H, T); padding ranks last
        order = norms.view(b, h, t // chunk, chunk).argsort(dim=-1)[..., chunk - keep:]  # ascending, top `keep`
        index = (order + torch.arange(0, t, chunk, device=k.device)[:, None]).reshape(b, h, -1)  # (B, H, Tc)
    gather = index[..., None].expand(-1, -1, -1, d)
    valid = is_key[:, None].expand(-1, h, -1).gather(-1, index)
    return k.gather(2, gather), v.gather(2, gather), valid


def sparse_pooling(q, k, v, is_key, geometry: LSGGeometry) -> SparseKeys:
    """Masked mean over windows of sparsity_factor tokens."""
    f = geometry.sparsity_factor
    if f == 1:
        return _all_keys(k, v, is_key)
    b, h, t, d = k.shape
    weight = is_key.to(k.dtype).view(b, 1, t // f, f, 1)
    count = weight.sum(dim=-2)  # (B, 1, Tc, 1)
    pooled_k = (k.view(b, h, t // f, f, d) * weight).sum(dim=-2) / (count + 1e-6)
    pooled_v = (v.view(b, h, t // f, f, d) * weight).sum(dim=-2) / (count + 1e-6)
    return pooled_k, pooled_v, count[..., 0] > 0


def _strided(k, v, is_key, index) -> SparseKeys:
    """Gather the token positions `index` (1|B, H, Tc) per head."""
    b, h, t, d = k.shape
    index = index.expand(b, h, -1)
    gather = index[..., None].expand(-1, -1, -1, d)
    valid = is_key[:, None].expand(-1, h, -1).gather(-1, index)
    return k.gather(2, gather), v.gather(2, gather), valid


def sparse_stride(q, k, v, is_key, geometry: LSGGeometry) -> SparseKeys:
    """Head h keeps every f-th token starting at h mod f."""
    f = geometry.sparsity_factor
    if f == 1:
        return _all_keys(k, v, is_key)
    h, t = k.shape[1], k.shape[2]
    start = torch.arange(h, device=k.device) % f
    index = torch.arange(t // f, device=k.device)[None, :] * f + start[:, None]  # (H, Tc)
    return _strided(k, v, is_key, index[None])


def sparse_block_stride(q, k, v, is_key, geometry: LSGGeometry) -> SparseKeys:
    """Head h keeps a contiguous run of block/f tokens inside each block, shifted by h runs."""
    f = geometry.sparsity_factor
    if f == 1:
        return _all_keys(k, v, is_key)
    h, t = k.shape[1], k.shape[2]
    bs, run = geometry.block_size, geometry.block_size // f
    within = (torch.arange(run, device=k.device)[None, :] + torch.arange(h, device=k.device)[:, None] * run) % bs
    index = within[:, None, :] + torch.arange(0, t, bs, device=k.device)[None, :, None]  # (H, nb, run)
    return _strided(k, v, is_key, index.reshape(1, h, -1))


def bos_pooling_visible(is_key: torch.Tensor, f: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, Tc) bool: which bos_pooling windows lsg-converter lets be attended.

    It takes each window's mean of the additive key mask (0, or dtype's min for a masked key) and
    masks the window only where that mean is exactly min. The sum of f >= 2 minima overflows to -inf
    in fp32 and bf16 (fp32 accumulation), so there every window is visible, padding-only ones
    included; in fp16 (sum accumulated in fp32) a window of padding only stays masked. The same
    arithmetic is run here, on the same dtype, so both sides agree on every device."""
    minimum = torch.finfo(dtype).min
    additive = torch.zeros(is_key.shape, dtype=dtype, device=is_key.device).masked_fill(~is_key, minimum)
    return additive.view(is_key.shape[0], -1, f).mean(dim=-1) != minimum


def sparse_bos_pooling(q, k, v, is_key, geometry: LSGGeometry) -> SparseKeys:
    """Windows of f tokens averaged with softmax(q_first . k / sqrt(D)), q_first the first token's query
    (the first non-global token, masked or not by mask_first_token).

    As in lsg-converter, a window of padding only is the plain mean of its (padding) keys and, in fp32
    and bf16, visible (see bos_pooling_visible): outputs then depend on the padding of the batch."""
    f = geometry.sparsity_factor
    if f == 1:
        return _all_keys(k, v, is_key)
    b, h, t, d = k.shape
    windows_k = k.view(b, h, t // f, f, d)
    key_ok = is_key.view(b, 1, t // f, f)
    scores = torch.einsum("bhcfd,bhd->bhcf", windows_k, q[:, :, 0]) / math.sqrt(d)  # (B, H, Tc, f)
    valid = bos_pooling_visible(is_key, f, k.dtype)[:, None]  # (B, 1, Tc)
    # lsg-converter adds min to masked scores: a window of padding only gets equal scores (a plain mean)
    scores = scores.masked_fill(~key_ok, float("-inf")).masked_fill(~key_ok.any(dim=-1, keepdim=True), 0.0)
    weights = torch.softmax(scores, dim=-1)
    pooled_k = torch.einsum("bhcf,bhcfd->bhcd", weights, windows_k)
    pooled_v = torch.einsum("bhcf,bhcfd->bhcd", weights, v.view(b, h, t // f, f, d))
    return pooled_k, pooled_v, valid


def lsh_round(keys, values, counts, size: int, generator=None):
    """Hash items into `size` buckets per chunk by random projections and sum them.

    keys, values: (B, H, nc, m, D) sums so far; counts: (B, H, nc, m) tokens behind each item.
    Returns summed (keys, values, counts) with m = size, and the (B, H, nc, m_in) bucket of every item.
    """
    b, h, nc, m, d = keys.shape
    with torch.no_grad():
        direction = F.normalize(keys.detach(), dim=-1) * (counts > 0)[..., None]
        planes = torch.randn(1, h, 1, d, max(size // 2, 1), device=keys.device, dtype=keys.dtype, generator=generator)
        projected = direction @ planes  # (B, H, nc, m, size/2)
        buckets = torch.cat([projected, -projected], dim=-1).argmax(dim=-1).clamp(max=size - 1)  # (B, H, nc, m)
    index = buckets[..., None].expand(-1, -1, -1, -1, d)
    new = lambda x: torch.zeros(b, h, nc, size, d, dtype=x.dtype, device=x.device).scatter_add(3, index, x)
    new_counts = torch.zeros(b, h, nc, size, dtype=counts.dtype, device=counts.device).scatter_add(3, buckets, counts)
    return new(keys), new(values), new_counts, buckets


def sparse_lsh(q, k, v, is_key, geometry: LSGGeometry, generator=None) -> SparseKeys:
    """Locality-sensitive hashing: inside each chunk of min(block, sparse block) tokens, keys that
    fall into one random-projection bucket are averaged into one compressed key, after
    `lsh_num_pre_rounds` rounds of hashing into as many buckets as tokens (not deterministic:
    seed torch to repeat a run)."""
    f = geometry.sparsity_factor
    if f == 1:
        return _all_keys(k, v, is_key)
    b, h, t, d = k.shape
    chunk = min(geometry.block_size, geometry.sparse_block_size)
    weight = is_key.to(k.dtype).view(b, 1, t // chunk, chunk)
    keys = k.view(b, h, t // chunk, chunk, d) * weight[..., None]
    values = v.view(b, h, t // chunk, chunk, d) * weight[..., None]
    counts = weight.expand(-1, h, -1, -1)
    for _ in range(geometry.lsh_num_pre_rounds):
        keys, values, counts, _ = lsh_round(keys, values, counts, chunk, generator)
    keys, values, counts, _ = lsh_round(keys, values, counts, chunk // f, generator)
    keys = keys / (counts[..., None] + 1e-8)
    values = values / (counts[..., None] + 1e-8)
    return keys.reshape(b, h, -1, d), values.reshape(b, h, -1, d), counts.reshape(b, h, -1) > 0


SPARSE_FUNCTIONS = {
    "norm": sparse_norm,
    "pooling": sparse_pooling,
    "stride": sparse_stride,
    "block_stride": sparse_block_stride,
    "bos_pooling": sparse_bos_pooling,
    "lsh": sparse_lsh,
}


def sparse_keys(q, k, v, pattern: LSGPattern) -> SparseKeys | None:
    """The compressed keys of `pattern`'s sparsity type, or None without sparse attention."""
    g = pattern.geometry
    if not g.has_sparse:
        return None
    return SPARSE_FUNCTIONS[g.sparsity_type](q, k, v, pattern.is_key, g)


def sparse_block_parts(x_c: torch.Tensor, pattern: LSGPattern) -> list[torch.Tensor]:
    """Each block's sparse keys (or values), as (B, H, nb, run, D) pieces (left run, right run).

    A run of consecutive compressed positions is a strided window view of the (zero-padded)
    compressed sequence: no gathered copy. Runs the reference's slicing leaves non-consecutive
    fall back to indexing. Positions outside the sequence read zeros (they are masked)."""
    geo = pattern.geometry
    chosen, pad = geo.sparse_offsets()
    step, nb, tc = geo.compressed_block, pattern.num_blocks, x_c.shape[2]
    half = min(geo.sparse_block_size, chosen.numel())
    parts = []
    for run in (chosen[:half], chosen[half:]):
        if run.numel() == 0:
            continue
        if not bool((run.diff() == 1).all()):
            positions = pattern.sparse_windows()[0][:, len(parts) * half:len(parts) * half + run.numel()]
            parts.append(x_c[:, :, positions])
            continue
        first = int(run[0]) - pad  # compressed position of block 0's first key in this run
        left = max(0, -first)
        right = max(0, first + (nb - 1) * step + run.numel() - tc)
        padded = F.pad(x_c, (0, 0, left, right)) if left or right else x_c
        windows = padded[:, :, first + left:].unfold(2, run.numel(), step)  # (B, H, >= nb, D, run)
        parts.append(windows[:, :, :nb].transpose(-1, -2))
    return parts


def _key_blocks(x: torch.Tensor, x_glob: torch.Tensor, x_sparse: list[torch.Tensor], bs: int,
                out: torch.Tensor | None = None, zero_edges: bool = True) -> torch.Tensor:
    """The keys (or values) of every query block, written once into one buffer (`out`, when given:
    every element is overwritten, the slots outside the sequence only when `zero_edges`).

    x: (B, H, T, D) tokens; x_glob: (B, H, G, D); x_sparse: pieces (B, H, nb, run, D).
    Returns (B, H, nb, G + S + 3*bs, D): [globals | sparse | blocks i-1, i, i+1] (zeros outside the sequence).
    """
    b, h, t, d = x.shape
    nb, g = t // bs, x_glob.shape[2]
    s = sum(part.shape[3] for part in x_sparse)
    if out is None:
        out = x.new_empty(b, h, nb, g + s + 3 * bs, d)
    out[:, :, :, :g] = x_glob[:, :, None]
    start = g
    for part in x_sparse:
        out[:, :, :, start:start + part.shape[3]] = part
        start += part.shape[3]
    blocks = x.view(b, h, nb, bs, d)
    local = g + s
    out[:, :, 1:, local:local + bs] = blocks[:, :, :-1]
    out[:, :, :, local + bs:local + 2 * bs] = blocks
    out[:, :, :-1, local + 2 * bs:] = blocks[:, :, 1:]
    if zero_edges:  # the blocks before the first and after the last
        out[:, :, :1, local:local + bs].zero_()
        out[:, :, -1:, local + 2 * bs:].zero_()
    return out


def _block_mask(pattern: LSGPattern, sparse_valid: torch.Tensor | None, heads: int) -> torch.Tensor:
    """(B, H * nb, 1, L) bool: which of each block's keys may be attended (globals, sparse, local).

    The global and local parts are the same in every layer and are cached on the pattern;
    `sparse_valid` (B, 1|H, Tc) is None without sparse keys."""
    geo, cache = pattern.geometry, pattern.cache
    if "block_mask_base" not in cache:
        bs, b = geo.block_size, pattern.is_key.shape[0]
        local = F.pad(pattern.is_key, (bs, bs), value=False).unfold(1, 3 * bs, bs)  # (B, nb, 3bs)
        glob = pattern.global_key_mask()[:, None].expand(b, pattern.num_blocks, -1)  # (B, nb, G)
        cache["block_mask_base"] = (glob, local)
    glob, local = cache["block_mask_base"]
    parts = [glob[:, None], local[:, None]]
    if sparse_valid is not None:
        positions, inside = pattern.sparse_windows()
        parts.insert(1, sparse_valid[:, :, positions] & inside)  # (B, 1|H, nb, S)
    mask_heads = max(p.shape[1] for p in parts)
    mask = torch.cat([p.expand(-1, mask_heads, -1, -1) for p in parts], dim=-1)  # (B, 1|H, nb, L)
    b, nb = mask.shape[0], mask.shape[2]
    return mask.expand(-1, heads, -1, -1).reshape(b, heads * nb, 1, -1)


def _reusable_buffers(pattern: LSGPattern, k: torch.Tensor, k_sparse: list, bs: int) -> tuple:
    """Without autograd, every layer writes its key/value blocks into the same two buffers: fresh
    tens-of-MB allocations per layer would each be page-faulted in by the kernel (a fifth of the
    attention time on CPU). With autograd each layer's blocks are kept for backward: no buffers.
    Returns (key buffer, value buffer, whether the out-of-sequence slots must be zeroed)."""
    if torch.is_grad_enabled() and k.requires_grad:
        return None, None, True
    b, h, n, d = k.shape
    nb = pattern.num_blocks
    width = pattern.geometry.num_global_tokens + sum(part.shape[3] for part in k_sparse) + 3 * bs
    shape = (b, h, nb, width, d)
    key = ("kv_buffers", shape, k.dtype, k.device)
    first_use = key not in pattern.cache
    if first_use:
        pattern.cache[key] = (k.new_empty(shape), k.new_empty(shape))
    return (*pattern.cache[key], first_use)  # the slots outside the sequence keep their zeros after first use


# Sparsity types whose compressed-key validity does not depend on the layer's keys: their block mask is
# built once per forward pass.
LAYER_INDEPENDENT_VALIDITY = ("pooling", "stride", "block_stride", "bos_pooling")


def _biased(mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Additive float mask: the bias where attending is allowed, -inf elsewhere."""
    return torch.where(mask, bias, torch.tensor(float("-inf"), dtype=bias.dtype, device=bias.device))


def lsg_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: LSGPattern,
                  dropout: float = 0.0, position_bias: LSGPositionBias | None = None) -> torch.Tensor:
    """LSG attention.

    q, k, v: (B, H, G + T, D), the G global tokens first. pattern.is_key: (B, T).
    position_bias: optional relative position bias added to the token rows' scores (MPNet).
    Returns the context (B, H, G + T, D).
    Global queries attend to every key; inputs of at most two blocks are attended densely;
    otherwise each block of queries attends to [globals | sparse keys | local keys].
    """
    geo = pattern.geometry
    glob = geo.num_global_tokens
    b, h, n, d = q.shape
    t = n - glob
    if t != pattern.length:
        raise ValueError(f"attention got {t} tokens after {glob} globals, but the pattern has {pattern.length}")
    full_mask = pattern.full_key_mask()[:, None, None, :]  # (B, 1, 1, G + T)
    if geo.uses_full_attention(t):
        if position_bias is not None:  # (H, G + T, G + T)
            full_mask = _biased(full_mask, position_bias.full[None].to(q.dtype))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=full_mask, dropout_p=dropout)
    bs = geo.block_size
    if t % bs:
        raise ValueError(f"LSG attention needs a multiple of block_size ({bs}) tokens, got {t}")
    global_out = F.scaled_dot_product_attention(q[:, :, :glob], k, v, attn_mask=full_mask, dropout_p=dropout)

    q_tok, k_tok, v_tok = q[:, :, glob:], k[:, :, glob:], v[:, :, glob:]
    nb = t // bs
    compressed = sparse_keys(q_tok, k_tok, v_tok, pattern)
    k_sparse, v_sparse, valid = [], [], None
    if compressed is not None:
        k_c, v_c, valid = compressed
        k_sparse, v_sparse = sparse_block_parts(k_c, pattern), sparse_block_parts(v_c, pattern)
    cacheable = compressed is None or geo.sparsity_factor == 1 or geo.sparsity_type in LAYER_INDEPENDENT_VALIDITY
    if cacheable and "block_mask" in pattern.cache:
        mask = pattern.cache["block_mask"]
    else:
        mask = _block_mask(pattern, valid, h)
        if cacheable:
            pattern.cache["block_mask"] = mask
    key_buffer, value_buffer, zero_edges = _reusable_buffers(pattern, k, k_sparse, bs)
    key_blocks = _key_blocks(k_tok, k[:, :, :glob], k_sparse, bs, key_buffer, zero_edges)  # (B, H, nb, L, D)
    value_blocks = _key_blocks(v_tok, v[:, :, :glob], v_sparse, bs, value_buffer, zero_edges)
    key_blocks, value_blocks = key_blocks.view(b, h * nb, -1, d), value_blocks.view(b, h * nb, -1, d)
    q_blocks = q_tok.reshape(b, h * nb, bs, d)
    if position_bias is not None:  # (H, bs, L) for every block
        bias = position_bias.blocks.to(q.dtype)[None, :, None]  # (1, H, 1, bs, L)
        mask = _biased(mask.view(b, h, nb, 1, -1), bias).reshape(b, h * nb, bs, -1)
    local_out = F.scaled_dot_product_attention(q_blocks, key_blocks, value_blocks, attn_mask=mask, dropout_p=dropout)
    return torch.cat([global_out, local_out.view(b, h, t, d)], dim=2)
