"""The batched iREC search over auxiliary variables, and the decoder's reconstruction.

Paper, section 3 (iREC with beam search) and docs/irec-method.md sections 2 (steps 4-8) and 4.
Per dimension, with prior N(mu_p, s_p^2) and posterior N(mu_q, s_q^2), the partial sum S_t = a_1 + ... + a_t
has cumulative prior variance V_t = C_t s_p^2, and the score of S_t is the cumulative log importance weight

    log q~_t(S_t) - log p~_t(S_t),   p~_t = N(0, V_t),
    q~_t = N((mu_q - mu_p) C_t,  s_q^2 C_t^2 + s_p^2 C_t (1 - C_t)),

which equals log q(z)/p(z) at the last step. Writing u = 1/V_t - 1/var(q~_t) and l = mean(q~_t)/var(q~_t), the
score of beam b extended by candidate a_c is, up to a constant per block and step,

    f(S_b) + g(a_c) + sum_d u_d S_bd a_cd,   f(S) = sum 0.5 u S^2 + l S,   g(a) = sum 0.5 u a^2 + l a.

All blocks of a level are searched by one compiled kernel, in parallel over blocks and without any Python loop over
blocks or steps; within a block, each step generates the N candidates from the shared randomness, scores them
against all beams (the beam x candidate cross term is one float32 matrix product, BLAS sgemm in one thread per
block, when B >= GEMM_MIN_BEAMS: 1.6 times faster than the loop it replaced at B = 50, and at B = 100 as fast as
that loop was at B = 50), then top-B selection keeps the beams. Both costs are per scored dimension: where q = p a
dimension's terms vanish (u = l = 0), so the encoder may leave out the dimensions of negligible KL
(``CoderParams.ignore_kl_below``), most of a VAE's top levels, without the decoder knowing. A block's search is
serial and deterministic, so the chosen indices do not depend on the thread count. They may depend on the CPU:
another BLAS kernel (or vector width) rounds the scores differently and can flip a near-tie, giving another valid
file, which decodes exactly all the same (the switch from the loop to sgemm changed 1 of 6 Kodak files this way, at
the same length). Samplers:

- ``beam``: keep the B best (beam, candidate) pairs by cumulative score (iREC); ``greedy`` is B = 1;
- ``sample``: Gumbel-top-B on the incremental log-weights score_t(b, c) - score_{t-1}(b), i.e. sequential
  importance resampling whose intermediate targets are the marginals q~_t, with encoder-side Gumbel noise
  from the counter-based generator under a key of its own (the original drew normal noise and produced NaNs).

The decoder regenerates only the chosen candidate of each step and adds them up in the same order with the
same float32 products and sums (no square root, no fused multiply-add); the encoder returns exactly that reconstruction, so encoder
and decoder agree bit for bit. :func:`reconstruct_torch` is the same decoder in torch operations, for any
device; tests check that both agree.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from irec.coder import randomness
from irec.coder.params import CoderParams
from irec.coder.schedule import BlockLayout, schedule_tables

_SHIFT = np.uint64(64 - randomness.TABLE_BITS)
# B from which the cross term is one sgemm rather than a loop: with fewer beams the product is too small to gain
# over the compiled loop (timings in docs/lossy-coder-history.md).
GEMM_MIN_BEAMS = 16


@functools.cache
def _blas_pools() -> ThreadpoolController:
    """The process's BLAS thread pools, found once (finding them scans the loaded libraries: 2 ms a time)."""
    import scipy.linalg.cython_blas  # noqa: F401 (the BLAS numba's np.dot calls: loaded before the scan)

    return ThreadpoolController()


@numba.njit(cache=True, fastmath=True)
def _score_block(key, size, index, dims, n_cand, table, std, u, l, beams, n_valid, gemm, cand, weighted, scores):
    """scores[b * n_cand + c] = f(S_b) + g(a_c) + <u S_b, a_c> up to a constant (encoder side only).

    Fills ``cand`` [n_cand, dims] with the step's candidates a_c in the ``dims`` scored dimensions, the block's
    dimensions ``index[:dims]`` of ``size``; the cross term of all beams and candidates is one float32 matrix product
    if ``gemm`` (BLAS sgemm, one thread per block: see :func:`search`), else a loop.
    """
    g = np.empty(n_cand, dtype=np.float32)
    for c in range(n_cand):
        acc = np.float32(0.0)
        for d in range(dims):
            a = table[randomness._word(key, c, size, index[d]) >> _SHIFT] * std[d]
            cand[c, d] = a
            acc += a * (np.float32(0.5) * u[d] * a + l[d])
        g[c] = acc
    beam_term = np.empty(n_valid, dtype=np.float64)
    for b in range(n_valid):
        acc64 = 0.0
        for d in range(dims):
            s = beams[b, d]
            weighted[b, d] = u[d] * s
            acc64 += (0.5 * u[d] * s + l[d]) * s
        beam_term[b] = acc64
    if gemm and dims > 0:
        cross = np.dot(weighted[:n_valid], cand.T)
        for b in range(n_valid):
            for c in range(n_cand):
                scores[b * n_cand + c] = beam_term[b] + g[c] + cross[b, c]
        return
    for c in range(n_cand):  # few beams: sgemm's packing costs more than it saves
        for b in range(n_valid):
            acc = np.float32(0.0)
            for d in range(dims):
                acc += weighted[b, d] * cand[c, d]
            scores[b * n_cand + c] = beam_term[b] + g[c] + acc


@numba.njit(cache=True)
def _top_k(values, n, k, order, top):
    """The indices of the k largest of values[:n] into order[:k], largest first, ties to the lower index.

    The same as ``np.argsort(-values[:n], kind="mergesort")[:k]`` for finite values, in O(n) for small k (a full
    sort of the B x N scores per step took most of the search); a NaN ranks as -inf. Returns min(k, n).
    """
    kept = 0
    for j in range(n):
        v = values[j]
        if np.isnan(v):  # never ahead of a number
            v = -np.inf
        if kept == k and not v > top[k - 1]:
            continue
        i = kept if kept < k else k - 1
        while i > 0 and v > top[i - 1]:
            top[i], order[i] = top[i - 1], order[i - 1]
            i -= 1
        top[i], order[i] = v, j
        kept = min(kept + 1, k)
    return kept


@numba.njit(cache=True)
def _search_block(seed, level, block, size, index, dims, n_steps, n_beams, n_cand, sample, table, q_mean, q_var,
                  p_var, p_scale32, root_fraction, cumulative, out):
    beams = np.zeros((n_beams, dims), dtype=np.float32)
    extended = np.zeros((n_beams, dims), dtype=np.float32)
    score = np.zeros(n_beams, dtype=np.float64)
    parents = np.zeros((n_steps, n_beams), dtype=np.int64)
    choices = np.zeros((n_steps, n_beams), dtype=np.int64)
    scores = np.empty(n_beams * n_cand, dtype=np.float64)
    cand = np.empty((n_cand, dims), dtype=np.float32)
    weighted = np.empty((n_beams, dims), dtype=np.float32)
    gemm = n_beams >= GEMM_MIN_BEAMS  # for the whole search, so that a setting always scores the same way
    gumbel = np.empty(n_beams * n_cand if sample else 0, dtype=np.float64)
    order = np.empty(n_beams, dtype=np.int64)
    top = np.empty(n_beams, dtype=np.float64)
    std = np.empty(dims, dtype=np.float32)
    u = np.empty(dims, dtype=np.float32)
    l = np.empty(dims, dtype=np.float32)
    n_valid = 1
    for t in range(n_steps):
        rho = cumulative[t]
        for d in range(dims):
            v = p_var[d] * rho
            var = q_var[d] * rho * rho + p_var[d] * rho * (1.0 - rho)
            u[d] = 1.0 / v - 1.0 / var
            l[d] = q_mean[d] * rho / var
            std[d] = p_scale32[d] * root_fraction[t]
        key = randomness._key(seed, level, block, t)
        _score_block(key, size, index, dims, n_cand, table, std, u, l, beams, n_valid, gemm, cand, weighted, scores)
        n_pairs = n_valid * n_cand
        ranking = scores
        if sample:
            gkey = randomness._gumbel_key(seed, level, block, t)
            for j in range(n_pairs):
                uniform = ((randomness._word(gkey, 0, n_pairs, j) >> np.uint64(11)) + 0.5) / 9007199254740992.0
                gumbel[j] = scores[j] - score[j // n_cand] - np.log(-np.log(uniform))
            ranking = gumbel
        n_keep = _top_k(ranking, n_pairs, n_beams, order, top)
        for k in range(n_keep):
            j = order[k]
            parent, choice = j // n_cand, j % n_cand
            parents[t, k], choices[t, k] = parent, choice
            for d in range(dims):
                extended[k, d] = beams[parent, d] + cand[choice, d]
        for k in range(n_keep):
            score[k] = scores[order[k]]
            beams[k, :] = extended[k, :]
        n_valid = n_keep
    # Final beam k in rank order: 0 is the best (beam) or the Gumbel-max draw (sample) of the last step.
    for k in range(out.shape[0]):
        current = k if k < n_valid else 0
        for t in range(n_steps - 1, -1, -1):
            out[k, t] = choices[t, current]
            current = parents[t, current]


@numba.njit(parallel=True, cache=True)
def _search(seed, level, sizes, index, scored, n_steps, n_beams, n_cand, sample, table, q_mean, q_var, p_var,
            p_scale32, root_fraction, cumulative, out):
    for i in numba.prange(sizes.shape[0]):
        if n_steps[i] > 0:
            dims = scored[i]
            _search_block(seed, level, i, sizes[i], index[i], dims, n_steps[i], n_beams, n_cand, sample, table,
                          q_mean[i, :dims], q_var[i, :dims], p_var[i, :dims], p_scale32[i, :dims], root_fraction[i],
                          cumulative[i], out[i])


@numba.njit(parallel=True, cache=True)
def _reconstruct(seed, level, sizes, n_steps, table, p_scale32, root_fraction, indices, out):
    for i in numba.prange(sizes.shape[0]):
        dims = sizes[i]
        for t in range(max(1, n_steps[i])):  # zero-KL blocks: candidate 0 of step 0 at c_0 = 1
            key = randomness._key(seed, level, i, t)
            choice = indices[i, t] if n_steps[i] > 0 else 0
            root = root_fraction[i, t]
            for d in range(dims):
                std = p_scale32[i, d] * root
                step = table[randomness._word(key, choice, dims, d) >> _SHIFT] * std
                out[i, d] = out[i, d] + step


def reconstruct(
    params: CoderParams, level: int, layout: BlockLayout, p_scale: torch.Tensor, n_steps: np.ndarray,
    indices: np.ndarray,
) -> torch.Tensor:
    """The decoder: sum of the chosen candidates, [n_blocks, width] float32 (add mu_p afterwards).

    ``p_scale`` is s_p in float32 and the block layout; candidate j of step t is ``eps_j * (s_p * sqrt(c_t))``.
    ``indices[b, t]`` is block b's candidate at step t < n_steps[b]. Zero-KL blocks (n_steps 0) take candidate 0 of step 0 at the full prior variance: a free
    sample of p = q.
    """
    root_fraction, _ = schedule_tables(n_steps)
    out = np.zeros((layout.n_blocks, layout.width), dtype=np.float32)
    indices = np.ascontiguousarray(indices if indices.shape[1] else np.zeros((layout.n_blocks, 1)), dtype=np.int64)
    _reconstruct(np.uint64(params.seed), np.uint64(level), layout.sizes, n_steps, randomness.normal_table(),
                 p_scale.numpy(), root_fraction.numpy(), indices, out)
    return torch.from_numpy(out)


def reconstruct_torch(
    params: CoderParams, level: int, layout: BlockLayout, p_scale: torch.Tensor, n_steps: np.ndarray,
    indices: np.ndarray, device: torch.device | str = "cpu",
) -> torch.Tensor:
    """:func:`reconstruct` in torch operations on any device (one step of all blocks at a time)."""
    root_fraction, _ = schedule_tables(n_steps)
    blocks = np.arange(layout.n_blocks)
    p_scale, root_fraction = p_scale.to(device), root_fraction.to(device)
    total = torch.zeros(layout.n_blocks, layout.width, dtype=torch.float32, device=device)
    for t in range(max(1, int(n_steps.max(initial=0)))):
        active = torch.from_numpy((t < n_steps) | ((n_steps == 0) & (t == 0))).to(device)
        keys = randomness.block_keys(params.seed, level, blocks, np.full(layout.n_blocks, t))
        chosen = np.where(t < n_steps, indices[:, min(t, indices.shape[1] - 1)] if indices.shape[1] else 0, 0)
        eps = randomness.normals_torch(keys, chosen[:, None], layout.sizes, layout.width, device)[:, 0]
        step = eps * (p_scale * root_fraction[:, t : t + 1])
        total = torch.where(active[:, None], total + step, total)
    return total.cpu()


def _scored_first(layout: BlockLayout, scored: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """(index, counts): each block's scored dimensions first, in their order, as positions in the block
    (int64 [n_blocks, width]), and how many there are (int64 [n_blocks]); padding is never scored."""
    inside = np.arange(layout.width)[None, :] < layout.sizes[:, None]
    keep = inside if scored is None else inside & scored.numpy().astype(bool)
    index = np.argsort(~keep, axis=1, kind="stable")
    return np.ascontiguousarray(index, dtype=np.int64), keep.sum(1).astype(np.int64)


def search(
    params: CoderParams, level: int, layout: BlockLayout, q_mean: torch.Tensor, q_var: torch.Tensor,
    p_var: torch.Tensor, p_scale32: torch.Tensor, n_steps: np.ndarray, scored: torch.Tensor | None = None,
) -> np.ndarray:
    """The encoder's search. Returns the candidate indices of every final beam, int64
    [n_blocks, beams, max(n_steps)], beams in rank order (0: the best, or the sampler's draw).

    ``q_mean`` is mu_q - mu_p and ``q_var``, ``p_var`` are s_q^2 and s_p^2, all [n_blocks, width] float64 in
    the block layout; ``p_scale32`` is the decoder's float32 s_p. ``scored``: an optional bool [n_blocks, width]
    mask of the dimensions whose terms enter the scores (default: all). A dimension left out is treated as if
    q = p there, where its terms vanish: its candidates are neither generated nor scored, and the coded sample
    follows the prior in it. The indices still address every dimension, so the decoder is unchanged.
    """
    root_fraction, cumulative = schedule_tables(n_steps)
    out = np.zeros((layout.n_blocks, params.beams, int(n_steps.max(initial=0))), dtype=np.int64)
    index, counts = _scored_first(layout, scored)
    q_mean, q_var, p_var, p_scale32 = (np.ascontiguousarray(np.take_along_axis(x.numpy(), index, axis=1))
                                       for x in (q_mean, q_var, p_var, p_scale32))
    with _blas_pools().limit(limits=1, user_api="blas"):  # blocks run in parallel; each one's products in one thread
        _search(
            np.uint64(params.seed), np.uint64(level), layout.sizes, index, counts, n_steps, params.beams,
            params.n_candidates, params.sampler == "sample", randomness.normal_table(), q_mean, q_var, p_var,
            p_scale32, root_fraction.numpy(), cumulative.numpy(), out,
        )
    return out
