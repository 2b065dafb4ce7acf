"""Longformer attention (sliding window + global tokens), exact and blocked.

Queries are cut into blocks of `b` rows; block i attends to the g global keys plus the
`b + 2w` keys that cover every window of its rows (w = one-sided window). Scores are
(B, blocks, H, b, g + b + 2w): linear in length, with b + 2w instead of 2w + 1 keys per row
(1.25x at w=256, b=128) where the chunked reference implementation computes 4w per row and
then copies the result through several diagonal re-layouts. Blocks are processed a chunk at
a time so no intermediate grows with the whole sequence.

Four paths, same numbers:
* CPU inference (no autograd, no dropout, no probabilities) in fp32: PyTorch's fused CPU
  attention kernel reads overlapping strided views of K and V, so no key block is ever copied;
  the global keys are attended separately and merged through the row log-sum-exps;
* CPU inference in bf16/fp16 (autocast): batched matmuls and a softmax over a few blocks at a
  time, faster there than the fused kernel's small half-precision GEMMs;
* other devices' inference: fused scaled_dot_product_attention on gathered key blocks;
* everything else: `_BlockedAttention`, an autograd Function that saves only q, k, v, the
  output and the row log-sum-exp, and recomputes block scores in backward (flash-attention
  style); with dropout it keeps one bool per score instead of the fp32 probabilities.

Shapes: B batch, H heads, T tokens, D head size, g global tokens, w one-sided window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .masks import LongformerPattern

BLOCKS_PER_CHUNK = 16
MATMUL_BLOCKS_PER_CHUNK = 4  # half-precision CPU inference: 16 blocks' scores (31 MB at base size) ran 1.2x slower
BACKWARD_BLOCKS_PER_CHUNK = 8  # backward holds ~5 score-sized temporaries per chunk: keep them small


def default_block_size(one_sided: int) -> int:
    """Query block rows: small enough that b + 2w stays close to the 2w + 1 keys a row needs,
    large enough for efficient matmuls."""
    return max(16, min(128, one_sided))


@dataclass
class _Geometry:
    """Block layout of one call plus the boolean mask pieces shared by forward and backward."""

    b: int  # query rows per block
    w: int  # one-sided window
    t: int  # sequence length
    n_blocks: int
    key_ok: torch.Tensor  # (B, Tp + 2w) bool: band keys that may be attended (real, not global), padded
    row_ok: torch.Tensor  # (B, Tp) bool: real query rows, padded
    g_idx: torch.Tensor  # (B, G) long
    g_valid: torch.Tensor  # (B, G) bool
    rel_ok: torch.Tensor  # (b, span) bool: key slot s is inside the window of row r
    diag: torch.Tensor  # (b, span) bool: the slot of row r itself
    cache: dict  # additive masks per dtype

    @property
    def span(self) -> int:
        return self.b + 2 * self.w

    @property
    def g(self) -> int:
        return self.g_idx.shape[1]

    @classmethod
    def build(cls, pattern: LongformerPattern, block_size: int | None, device) -> "_Geometry":
        w = pattern.window.one_sided
        b = block_size or default_block_size(w)
        key = ("geometry", w, b)
        if key not in pattern.cache:  # once per window per forward pass, not once per layer
            pattern.cache[key] = cls._build(pattern, w, b, device)
        return pattern.cache[key]

    @classmethod
    def _build(cls, pattern: LongformerPattern, w: int, b: int, device) -> "_Geometry":
        bsz, t = pattern.is_token.shape
        n_blocks = -(-t // b)
        tp = n_blocks * b
        is_global = pattern.is_global
        key_ok = F.pad(pattern.is_token & ~is_global, (w, tp - t + w), value=False)
        row_ok = F.pad(pattern.is_token, (0, tp - t), value=False)
        r = torch.arange(b, device=device)[:, None]
        s = torch.arange(b + 2 * w, device=device)[None, :]
        rel_ok = (s - r >= 0) & (s - r <= 2 * w)  # |(r) - (s - w)| <= w
        diag = s - r == w
        return cls(b, w, t, n_blocks, key_ok, row_ok, pattern.globals.indices, pattern.globals.valid, rel_ok, diag,
                   cache={})

    def band_mask(self, c0: int, c1: int) -> torch.Tensor:
        """(B, n, b, span) bool: allowed window keys of blocks c0..c1-1. Padded rows may see their
        own slot so that no row is empty (their output is zeroed afterwards)."""
        b, span = self.b, self.span
        keys = self.key_ok[:, c0 * b : c1 * b + 2 * self.w].unfold(1, span, b)  # (B, n, span)
        band = self.rel_ok & keys[:, :, None, :]  # (B, n, b, span)
        rows_bad = ~self.row_ok[:, c0 * b : c1 * b].view(-1, c1 - c0, b)  # (B, n, b)
        return band | (rows_bad[..., None] & self.diag)

    def band_bias(self, dtype) -> torch.Tensor:
        """(B, nb, 1, b, span) additive mask (0 / -inf) of the window keys, cached per dtype."""
        return self._additive("band", self.band_mask, dtype)

    def bias(self, dtype) -> torch.Tensor:
        """(B, nb, 1, b, g + span) additive mask of global and window keys, cached per dtype."""
        return self._additive("all", self.mask, dtype)

    def _additive(self, name, allowed_fn, dtype) -> torch.Tensor:
        if (name, dtype) not in self.cache:
            allowed = allowed_fn(0, self.n_blocks)[:, :, None]
            zeros = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
            self.cache[(name, dtype)] = zeros.masked_fill_(~allowed, float("-inf"))
        return self.cache[(name, dtype)]

    def mask(self, c0: int, c1: int) -> torch.Tensor:
        """(B, n, b, g + span) bool: allowed keys (global slots first) of blocks c0..c1-1."""
        b = self.b
        band = self.band_mask(c0, c1)
        if self.g == 0:
            return band
        glob = self.g_valid[:, None, None, :].expand(-1, c1 - c0, b, -1)  # (B, n, b, g)
        return torch.cat([glob, band], dim=-1)

    def pad_keys(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, H, Tp + 2w, D) with zeros around."""
        return F.pad(x, (0, 0, self.w, self.n_blocks * self.b - self.t + self.w))

    def pad_queries(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, self.n_blocks * self.b - self.t))

    def key_blocks(self, x_pad: torch.Tensor, x_glob: torch.Tensor | None, c0: int, c1: int) -> torch.Tensor:
        """Keys (or values) of blocks c0..c1-1: (B, n, H, g + span, D), contiguous."""
        b = self.b
        band = x_pad[:, :, c0 * b : c1 * b + 2 * self.w].unfold(2, self.span, b)  # (B, H, n, D, span)
        band = band.permute(0, 2, 1, 4, 3)  # (B, n, H, span, D)
        if x_glob is None:
            return band.contiguous()
        glob = x_glob[:, None].expand(-1, c1 - c0, -1, -1, -1)  # (B, n, H, g, D)
        return torch.cat([glob, band], dim=3)

    def query_blocks(self, q_pad: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
        """(B, H, Tp, D) -> (B, n, H, b, D) view."""
        bsz, h, _, d = q_pad.shape
        return q_pad[:, :, c0 * self.b : c1 * self.b].view(bsz, h, c1 - c0, self.b, d).permute(0, 2, 1, 3, 4)

    def gather_globals(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, H, T, D) -> (B, H, g, D) rows of the global tokens."""
        if self.g == 0:
            return None
        return x.gather(2, _head_index(self.g_idx, x))

    def chunks(self, size: int = BLOCKS_PER_CHUNK):
        for c0 in range(0, self.n_blocks, size):
            yield c0, min(c0 + size, self.n_blocks)


def _head_index(indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, g) token positions -> (B, H, g, D) index for gather/scatter along dim 2 of `like`."""
    return indices[:, None, :, None].expand(-1, like.shape[1], -1, like.shape[3])


def _finish(blocks: list[torch.Tensor], geo: _Geometry) -> torch.Tensor:
    """List of per-chunk rows (B, n, H, b, X) -> (B, H, T, X) with padded rows zeroed
    (X = D for outputs, g + 2w + 1 for probabilities)."""
    out = torch.cat(blocks, dim=1)  # (B, nb, H, b, X)
    bsz, nb, h, b, x = out.shape
    out = out.permute(0, 2, 1, 3, 4).reshape(bsz, h, nb * b, x)[:, :, : geo.t]
    return out.masked_fill(~geo.row_ok[:, None, : geo.t, None], 0.0)


def _band_probs(probs: torch.Tensor, geo: _Geometry) -> torch.Tensor:
    """(B, n, H, b, g + span) fp32 -> (B, n, H, b, g + 2w + 1): global columns then keys at
    relative offsets -w..w, the `transformers` layout of local attention probabilities."""
    g, span, b, w = geo.g, geo.span, geo.b, geo.w
    band = probs[..., g:].contiguous()
    lead = band.shape[:-2]
    diag = band.as_strided(
        (*lead, b, 2 * w + 1), (*band.stride()[:-2], span + 1, 1), band.storage_offset()
    )  # row r, column j -> slot r + j
    return torch.cat([probs[..., :g], diag], dim=-1)


def _sdpa_local(q, k, v, geo: _Geometry) -> torch.Tensor:
    """Fused inference path."""
    q_pad, k_pad, v_pad = geo.pad_queries(q), geo.pad_keys(k), geo.pad_keys(v)
    k_glob, v_glob = geo.gather_globals(k), geo.gather_globals(v)
    outs = []
    for c0, c1 in geo.chunks():
        qb = geo.query_blocks(q_pad, c0, c1)
        bsz, n, h, b, d = qb.shape
        kb = geo.key_blocks(k_pad, k_glob, c0, c1).view(bsz * n, h, -1, d)
        vb = geo.key_blocks(v_pad, v_glob, c0, c1).view(bsz * n, h, -1, d)
        mask = geo.bias(q.dtype)[:, c0:c1].reshape(bsz * n, 1, b, -1)  # built once per forward
        o = F.scaled_dot_product_attention(qb.reshape(bsz * n, h, b, d), kb, vb, attn_mask=mask)
        outs.append(o.view(bsz, n, h, b, d))
    return _finish(outs, geo)


def _matmul_local(q, k, v, geo: _Geometry) -> torch.Tensor:
    """CPU inference in bf16/fp16: the blocks as plain batched matmuls and one softmax.

    PyTorch's fused CPU attention kernel cuts a block's 128 queries into 32-row tiles whose small
    half-precision GEMMs run no faster than fp32 (measured on AVX512-BF16: 0.48 s per layer at
    4096 tokens against 0.44 s in fp32), so in half precision this path is ~1.8x faster: scores of
    a few blocks at a time (g + span keys, cache-sized), the mask added, softmax (which computes in
    fp32 internally and rounds the probabilities), probabilities times values. The scores are
    rounded to the input dtype, as autocast does for every matmul."""
    q_pad = geo.pad_queries(q) * (1.0 / math.sqrt(q.shape[-1]))  # pre-scaled: one pass over q, not over scores
    k_pad, v_pad = geo.pad_keys(k), geo.pad_keys(v)
    k_glob, v_glob = geo.gather_globals(k), geo.gather_globals(v)
    bias = geo.bias(q.dtype)  # (B, nb, 1, b, g + span)
    outs = []
    for c0, c1 in geo.chunks(MATMUL_BLOCKS_PER_CHUNK):
        kb = geo.key_blocks(k_pad, k_glob, c0, c1)  # (B, n, H, g + span, D), contiguous
        vb = geo.key_blocks(v_pad, v_glob, c0, c1)
        scores = torch.matmul(geo.query_blocks(q_pad, c0, c1), kb.transpose(-1, -2))  # (B, n, H, b, g + span)
        probs = torch.softmax(scores.add_(bias[:, c0:c1]), dim=-1)
        outs.append(torch.matmul(probs, vb))  # (B, n, H, b, D)
    return _finish(outs, geo)


_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _flash_cpu_local(q, k, v, geo: _Geometry) -> torch.Tensor:
    """CPU inference path: no key block is copied (see module docstring)."""
    bsz, h, t, d = q.shape
    b, w, nb, span = geo.b, geo.w, geo.n_blocks, geo.span
    tp = nb * b
    q_t = F.pad(q.transpose(1, 2), (0, 0, 0, 0, 0, tp - t))  # (B, Tp, H, D)
    k_t = F.pad(k.transpose(1, 2), (0, 0, 0, 0, w, tp - t + w))  # (B, Tp + 2w, H, D)
    v_t = F.pad(v.transpose(1, 2), (0, 0, 0, 0, w, tp - t + w))
    bias = geo.band_bias(q.dtype)  # (B, nb, 1, b, span)
    outs, lses = [], []
    for row in range(bsz):  # one kernel call per batch row: the key views overlap within a row only
        qb = q_t[row].view(nb, b, h, d).permute(0, 2, 1, 3)  # (nb, H, b, D)
        kb = k_t[row].unfold(0, span, b).permute(0, 1, 3, 2)  # (nb, H, span, D), a view
        vb = v_t[row].unfold(0, span, b).permute(0, 1, 3, 2)
        o, lse = _FLASH_CPU(qb, kb, vb, attn_mask=bias[row])  # o (nb, H, b, D), lse (nb, H, b)
        outs.append(o.transpose(1, 2).reshape(tp, h, d))
        lses.append(lse.transpose(1, 2).reshape(tp, h))
    out = torch.stack(outs)[:, :t].transpose(1, 2)  # (B, H, T, D)
    if geo.g:
        lse_band = torch.stack(lses)[:, :t].transpose(1, 2)  # (B, H, T)
        out = _merge_global_keys(q, out, lse_band, geo.gather_globals(k), geo.gather_globals(v), geo)
    return out.masked_fill(~geo.row_ok[:, None, :t, None], 0.0)


def _merge_global_keys(q, out_band, lse_band, k_glob, v_glob, geo: _Geometry) -> torch.Tensor:
    """Softmax over [globals | window] from the two parts' outputs and log-sum-exps."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = _acc((q * scale) @ k_glob.transpose(-1, -2))  # (B, H, T, g)
    scores = scores.masked_fill(~geo.g_valid[:, None, None, :], float("-inf"))
    lse_glob = torch.logsumexp(scores, dim=-1)  # (B, H, T); -inf in rows without globals
    total = torch.logaddexp(lse_band, lse_glob)
    probs = torch.exp(scores - total[..., None]).nan_to_num_(0.0)  # already weighted by the merge
    out_glob = probs.to(v_glob.dtype) @ v_glob  # (B, H, T, D)
    w_band = torch.exp(lse_band - total)[..., None]
    return (_acc(out_band) * w_band + _acc(out_glob)).to(q.dtype)


class _BlockedAttention(torch.autograd.Function):
    """Local rows (window + global keys) with recompute in backward. Saves O(T) tensors: q, k, v,
    the output, one log-sum-exp per row and, with dropout, a bool drop-mask per score. The row
    term of the softmax gradient, rowsum(P * dP), is computed as rowsum(dO * O): D wide instead of
    g + span wide (one activation per layer more memory, two score-sized passes fewer)."""

    @staticmethod
    def forward(ctx, q, k, v, geo: _Geometry, dropout_p: float, want_probs: bool):
        scale = 1.0 / math.sqrt(q.shape[-1])
        q_pad = geo.pad_queries(q) * scale  # pre-scaled once, as the reference does
        k_pad, v_pad = geo.pad_keys(k), geo.pad_keys(v)
        k_glob, v_glob = geo.gather_globals(k), geo.gather_globals(v)
        bias = geo.bias(_acc(q[:0]).dtype)  # (B, nb, 1, b, g + span)
        outs, lses, probs_out = [], [], []
        drop = None  # (B, nb, H, b, g + span) bool, True where dropped; filled chunk by chunk
        if dropout_p > 0:
            drop = torch.empty((q.shape[0], geo.n_blocks, q.shape[1], geo.b, geo.g + geo.span), dtype=torch.bool,
                               device=q.device)
        for c0, c1 in geo.chunks():
            kb = geo.key_blocks(k_pad, k_glob, c0, c1)  # (B, n, H, g + span, D)
            vb = geo.key_blocks(v_pad, v_glob, c0, c1)
            scores = _acc(geo.query_blocks(q_pad, c0, c1) @ kb.transpose(-1, -2))  # (B, n, H, b, g + span)
            scores += bias[:, c0:c1]
            probs = torch.softmax(scores, dim=-1)  # one fused pass (logsumexp, subtract, exp: 1.3x slower)
            # the log-sum-exp from the row's largest probability, exp(max - lse): no second exp pass
            lse = scores.amax(dim=-1, keepdim=True) - probs.amax(dim=-1, keepdim=True).log_()  # (B, n, H, b, 1)
            if want_probs:
                probs_out.append(_band_probs(probs, geo))
            if dropout_p > 0:
                drop[:, c0:c1] = _drop_mask(probs.shape, dropout_p, probs.device)
                probs = probs.masked_fill_(drop[:, c0:c1], 0.0)
            out = probs.to(v.dtype) @ vb  # (B, n, H, b, D)
            outs.append(out / (1.0 - dropout_p) if dropout_p > 0 else out)
            lses.append(lse)
        out = _finish(outs, geo)
        ctx.geo, ctx.dropout_p = geo, dropout_p
        ctx.save_for_backward(q, k, v, out, torch.cat(lses, dim=1), *([drop] if drop is not None else []))
        probs = _finish(probs_out, geo) if want_probs else None
        ctx.mark_non_differentiable(*([probs] if probs is not None else []))
        return out, probs

    @staticmethod
    def backward(ctx, grad_out, _grad_probs):
        q, k, v, out, lse, *drop = ctx.saved_tensors
        geo, p = ctx.geo, ctx.dropout_p
        scale = 1.0 / math.sqrt(q.shape[-1])
        acc = _acc(q[:0]).dtype
        grad_out = grad_out.masked_fill(~geo.row_ok[:, None, : geo.t, None], 0.0)
        q_pad, k_pad, v_pad = geo.pad_queries(q) * scale, geo.pad_keys(k), geo.pad_keys(v)
        k_glob, v_glob = geo.gather_globals(k), geo.gather_globals(v)
        do_pad = geo.pad_queries(grad_out)
        # rowsum(dO * O) per query row, (B, nb, H, b, 1); padded rows have dO = 0
        row_dots = (_acc(grad_out) * _acc(out)).sum(-1, keepdim=True)
        row_dots = geo.query_blocks(geo.pad_queries(row_dots), 0, geo.n_blocks)
        do_scaled = do_pad / (1.0 - p) if p > 0 else do_pad  # dropout's 1 / (1 - p) on D columns, not on scores
        bias = geo.bias(acc)
        dq_pad = torch.zeros_like(q_pad, dtype=acc)
        dk_pad = torch.zeros_like(k_pad, dtype=acc)
        dv_pad = torch.zeros_like(v_pad, dtype=acc)
        dk_glob = torch.zeros_like(k_glob, dtype=acc) if geo.g else None
        dv_glob = torch.zeros_like(v_glob, dtype=acc) if geo.g else None
        b, span = geo.b, geo.span
        for c0, c1 in geo.chunks(BACKWARD_BLOCKS_PER_CHUNK):
            qb = geo.query_blocks(q_pad, c0, c1)  # (B, n, H, b, D), scaled
            kb = geo.key_blocks(k_pad, k_glob, c0, c1)
            vb = geo.key_blocks(v_pad, v_glob, c0, c1)
            dob = geo.query_blocks(do_scaled, c0, c1)
            scores = _acc(qb @ kb.transpose(-1, -2))
            scores += bias[:, c0:c1]
            probs = scores.sub_(lse[:, c0:c1]).exp_()  # (B, n, H, b, g + span)
            d_probs = _acc(dob @ vb.transpose(-1, -2))
            kept = probs
            if p > 0:  # out = (P * keep) V / (1 - p); dob carries the 1 / (1 - p)
                dropped = drop[0][:, c0:c1]
                kept = probs.masked_fill(dropped, 0.0)
                d_probs = d_probs.masked_fill_(dropped, 0.0)
            dvb = _acc(kept.to(v.dtype).transpose(-1, -2) @ dob)  # before probs is overwritten below
            ds = probs.mul_(d_probs.sub_(row_dots[:, c0:c1])).to(q.dtype)  # dL/dscores
            dqb = _acc(ds @ kb) * scale  # (B, n, H, b, D)
            dkb = _acc(ds.transpose(-1, -2) @ qb)  # (B, n, H, g + span, D); qb carries the scale
            bsz, n, h, _, d = dqb.shape
            dq_pad[:, :, c0 * b : c1 * b] = dqb.permute(0, 2, 1, 3, 4).reshape(bsz, h, n * b, d)
            pos = (torch.arange(c0, c1, device=q.device)[:, None] * b + torch.arange(span, device=q.device)).flatten()
            for acc_band, blocks, acc_glob in ((dk_pad, dkb, dk_glob), (dv_pad, dvb, dv_glob)):
                band = blocks[:, :, :, geo.g :].permute(0, 2, 1, 3, 4).reshape(bsz, h, n * span, d)
                acc_band.index_add_(2, pos, band)
                if acc_glob is not None:
                    acc_glob += blocks[:, :, :, : geo.g].sum(dim=1)
        t, w = geo.t, geo.w
        dq = dq_pad[:, :, :t]
        dk, dv = dk_pad[:, :, w : w + t], dv_pad[:, :, w : w + t]
        if geo.g:
            idx = _head_index(geo.g_idx, k)
            dk = dk.scatter_add(2, idx, dk_glob)
            dv = dv.scatter_add(2, idx, dv_glob)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


def _drop_mask(shape, p: float, device) -> torch.Tensor:
    """Bool tensor, True with probability p (to within 2**-32). On CPU from 32 random bits per element,
    drawn as 64-bit integers: 3x faster than comparing torch.rand's floats, which made the attention
    dropout cost more than the attention's softmax."""
    if torch.device(device).type != "cpu":
        return torch.rand(shape, device=device) < p
    n = math.prod(shape)
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_(-(2**63), None)
    threshold = round(p * 2**32) - 2**31  # P(int32 < threshold) = p for uniform int32
    return (bits.view(torch.int32)[:n] < threshold).view(shape)


def _acc(x: torch.Tensor) -> torch.Tensor:
    """Scores and softmax in fp32 for half types, in the input's own precision otherwise."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def local_attention(q, k, v, pattern: LongformerPattern, dropout_p: float = 0.0, return_probs: bool = False,
                    block_size: int | None = None):
    """Rows of every token against its window (padding and global keys removed) and all global keys.

    q, k, v: (B, H, T, D), unscaled (the 1/sqrt(D) scale is applied here).
    Returns (out (B, H, T, D) with padded rows zero, probs (B, H, T, g + 2w + 1) fp32 or None).
    """
    geo = _Geometry.build(pattern, block_size, q.device)
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    if not needs_grad and dropout_p == 0.0 and not return_probs:
        if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
            return _matmul_local(q, k, v, geo), None
        if q.device.type == "cpu" and _FLASH_CPU is not None:
            return _flash_cpu_local(q, k, v, geo), None
        return _sdpa_local(q, k, v, geo), None
    return _BlockedAttention.apply(q, k, v, geo, dropout_p, return_probs)


def global_attention(q_glob, k, v, pattern: LongformerPattern, dropout_p: float = 0.0, training: bool = False):
    """Rows of the global tokens against every real key (with the global projections).

    q_glob: (B, H, g, D) queries of the global tokens in `pattern.globals` order; k, v: (B, H, T, D).
    Returns (out (B, H, g, D), probs (B, H, g, T) fp32). g x T is small: plain autograd.
    """
    scale = 1.0 / math.sqrt(q_glob.shape[-1])
    scores = _acc((q_glob * scale) @ k.transpose(-1, -2))  # (B, H, g, T)
    probs, dropped = _global_softmax(scores, pattern, dropout_p, training)
    return dropped.to(v.dtype) @ v, probs


def global_attention_factored(q_glob, hidden, key_weight, key_bias, value_weight, value_bias,
                              pattern: LongformerPattern, dropout_p: float = 0.0, training: bool = False):
    """`global_attention` without projecting every token's global key and value.

    Per head, q . (W_k h + b_k) = (W_k^T q) . h + q . b_k and sum_j p_j (W_v h_j + b_v) =
    W_v (sum_j p_j h_j) + b_v sum_j p_j: g*H*T*C multiply-adds instead of 2*T*C*C, the better
    choice while H * g < C (a handful of global tokens).

    q_glob: (B, H, g, D); hidden: (B, T, C); key/value weights (C, C) and biases (C,) of the
    global key and value projections. Returns (out (B, H, g, D), probs (B, H, g, T) fp32).
    """
    bsz, h, g, d = q_glob.shape
    t, c = hidden.shape[1:]
    q_scaled = q_glob * (1.0 / math.sqrt(d))
    q_hidden = torch.einsum("bhgd,hdc->bhgc", q_scaled, key_weight.view(h, d, c))  # (B, H, g, C)
    q_bias = (q_scaled * key_bias.view(1, h, 1, d)).sum(-1, keepdim=True)  # (B, H, g, 1)
    scores = _acc(q_hidden.reshape(bsz, h * g, c) @ hidden.transpose(1, 2)).view(bsz, h, g, t) + q_bias
    probs, dropped = _global_softmax(scores, pattern, dropout_p, training)
    mixed = (dropped.to(hidden.dtype).view(bsz, h * g, t) @ hidden).view(bsz, h, g, c)  # (B, H, g, C)
    out = torch.einsum("bhgc,hdc->bhgd", mixed, value_weight.view(h, d, c))
    return out + dropped.sum(-1, keepdim=True).to(out.dtype) * value_bias.view(1, h, 1, d), probs


def _global_softmax(scores, pattern: LongformerPattern, dropout_p: float, training: bool):
    scores = scores.masked_fill(~pattern.is_token[:, None, None, :], torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    return probs, F.dropout(probs, p=dropout_p, training=training)


def merge_global_rows(out, local_probs, global_out, global_probs, pattern: LongformerPattern):
    """Write the global tokens' rows (B, H, g, D) over the local result (B, H, T, D).

    Returns (out, local_probs with global rows zeroed, global_probs with empty slots zeroed)."""
    idx = _head_index(pattern.globals.indices, out)
    valid = pattern.globals.valid[:, None, :, None]
    rows = torch.zeros_like(out).scatter_add(2, idx, (global_out * valid).to(out.dtype))  # empty slots add 0
    out = torch.where(pattern.is_global[:, None, :, None], rows, out)
    if local_probs is not None:
        local_probs = local_probs.masked_fill(pattern.is_global[:, None, :, None], 0.0)
    if global_probs is not None:
        global_probs = global_probs * valid
    return out, local_probs, global_probs


def longformer_attention(q, k, v, pattern: LongformerPattern, global_qkv=None, dropout_p: float = 0.0,
                         training: bool = False, return_probs: bool = False, block_size: int | None = None):
    """Longformer self-attention, exactly as `transformers` defines it, in O(T) memory.

    q, k, v:    (B, H, T, D) local projections of every token.
    global_qkv: (q_glob (B, H, g, D) global-query projections of the global tokens in
                `pattern.globals` order, k_glob (B, H, T, D), v_glob (B, H, T, D)); needed when
                the pattern has global tokens.
    Returns (out (B, H, T, D), local_probs (B, H, T, g + 2w + 1) or None,
             global_probs (B, H, g, T) or None). Probabilities come only with `return_probs`.
    """
    p = dropout_p if training else 0.0
    out, local_probs = local_attention(q, k, v, pattern, p, return_probs, block_size)
    if pattern.globals.count == 0:
        return out, local_probs, None
    if global_qkv is None:
        raise ValueError("the pattern has global tokens: pass global_qkv=(q_glob, k_glob, v_glob)")
    g_out, g_probs = global_attention(*global_qkv, pattern, p, training)  # (B, H, g, D)
    return merge_global_rows(out, local_probs, g_out, g_probs if return_probs else None, pattern)
