"""The fp16/bf16 forward kernel on Hopper: TMA tensor descriptors, and warp specialization where it is right.

Same numerics and API as :func:`kernels.flash_fp16.flash_attention_fp16`, which launches this kernel
on sm_90 GPUs where it was measured faster (:func:`prefer_tma`) and the operands suit TMA
(:func:`tma_eligible`). The loop is the same online softmax; what changes is how it runs:

* K and V tiles arrive by TMA (``tl.make_tensor_descriptor``, one 2-D descriptor per head, so any
  batch/head/token strides work and rows past a head's end read as zeros instead of the next head's
  data); the output is stored by TMA, which clips at Nq and D.
* Non-causal: ``tl.range(..., warp_specialize=True)``. Triton 3.6's Hopper pass splits the program into
  one producer warp group (TMA loads) and two consumer groups of 64 query rows each, which trade
  registers with ``setmaxnreg``; one group's softmax overlaps the other's MMAs. These launches are
  persistent: one program per SM walks the query blocks (the specialized key loop nested in that walk).
* Causal: the same pass miscompiled the row-dependent mask on an H200 (wrong rows; the interpreter
  was right), so causal launches are not warp-specialized: 8 warps, full key blocks then the masked
  diagonal band in a second loop, TMA loads pipelined over 3 stages.
* The running maximum is kept in raw dot units and the exponent is ``(s - m) · scale``: the key that
  holds the maximum gets exactly ``exp2(0)`` however the compiler contracts multiplies and adds, so
  the launch keeps FP fusion on (as the pointer kernel's does).
* The denominator sums P before its rounding to the input dtype (FlashAttention's choice; the pointer
  kernel does this for fp16, and sums the rounded P for bf16): a row of V = 1 gives 1 within one
  rounding of P instead of exactly.

Device-side descriptors need a scratch allocation per launch: the launcher installs a torch-backed
allocator with ``triton.set_allocator`` when none is set.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._validate import check_attention_inputs, interpreting, upcast_dots
from kernels.launch import LOG2E, BlockConfig, grid_for, item_block, make_output, program_block, strided_grid

# (BLOCK_M, BLOCK_N, num_warps, num_stages) per (causal, padded head dim); none for head dim 256, whose
# tiles do not fit in shared memory (its launches use the pointer kernel). Non-causal: num_warps is the
# consumer group size, the compiled kernel has 12 warps (BLOCK_N = 64 with 3 stages returned NaN).
# Timed on an H200 (docs/perf.md, v7).
TMA_TILES: dict[tuple[bool, int], tuple[int, int, int, int]] = {
    (False, 32): (128, 128, 4, 2),
    (False, 64): (128, 128, 4, 2),
    (False, 128): (128, 128, 4, 2),
    (True, 32): (128, 128, 8, 3),
    (True, 64): (128, 128, 8, 3),
    (True, 128): (128, 128, 8, 3),
}

# Head dims the TMA kernel takes (256 does not fit in shared memory with these tiles).
TMA_HEAD_DIMS: tuple[int, ...] = (32, 64, 96, 128)


def tma_eligible(*tensors: torch.Tensor) -> bool:
    """True when every tensor is on an sm_90 GPU with 16-byte aligned base and strides (TMA's rules)."""
    for t in tensors:
        if not t.is_cuda or torch.cuda.get_device_capability(t.device)[0] != 9:
            return False
        if t.data_ptr() % 16 or t.stride(-1) != 1:
            return False
        if any((s * t.element_size()) % 16 for s in t.stride()[:-1]):
            return False
    return True


def _torch_scratch(size: int, alignment: int, stream) -> torch.Tensor:
    # The caching allocator's blocks are 512-byte aligned, more than TMA's 128.
    return torch.empty(size, dtype=torch.int8, device="cpu" if interpreting() else "cuda")


def _ensure_allocator() -> None:
    """Install a torch-backed scratch allocator for device-side descriptors unless the caller set one.

    Triton keeps the allocator in a context variable (per thread), so this is checked on every launch.
    """
    from triton.runtime import _allocation

    if isinstance(_allocation._allocator.get(), _allocation.NullAllocator):
        triton.set_allocator(_torch_scratch)


@triton.jit
def _fp16_tma_block(
    acc, l_i, m_i, q, dk, dv, start_n, offs_m, offs_n, Nq, Nk, qk_scale,
    MASK: tl.constexpr, UPCAST: tl.constexpr, P_DTYPE: tl.constexpr,
):  # fmt: skip
    # One key block of the online softmax. MASK: 0 none, 1 the ragged end, 2 bottom-right causal.
    k = dk.load([start_n, 0])
    if UPCAST:
        k = k.to(tl.float32)
    s = tl.dot(q, k.T)
    if MASK == 1:
        s = tl.where((start_n + offs_n)[None, :] < Nk, s, float("-inf"))
    if MASK == 2:
        cols = start_n + offs_n
        valid = (cols[None, :] < Nk) & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
        s = tl.where(valid, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    # A row that has seen only masked keys keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.math.exp2((m_i - m_use) * qk_scale)
    # (s - m) is exactly 0 at the maximum: its weight is exactly 1 whatever the contraction.
    p_f32 = tl.math.exp2((s - m_use[:, None]) * qk_scale)
    l_i = l_i * alpha + tl.sum(p_f32, axis=1)
    p = p_f32.to(P_DTYPE)
    if UPCAST:
        p = p.to(tl.float32)
    v = dv.load([start_n, 0])
    if UPCAST:
        v = v.to(tl.float32)
    acc = tl.dot(p, v, acc * alpha[:, None])
    return acc, l_i, m_new


@triton.jit(do_not_specialize=["Hq", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS", "NUM_ITEMS"])
def _flash_fp16_tma_kernel(
    Q, K, V, O,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    Hq, GROUP, Nq, Nk, D, qk_scale, NUM_M_BLOCKS, NUM_ITEMS,
    MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    if CAUSAL:
        bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
        _fp16_tma_program(
            Q, K, V, O, stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb,
            stride_vh, stride_vn, Hq, GROUP, Nq, Nk, D, qk_scale, bh, b, h, start_m,
            MASK, CAUSAL, UPCAST, BLOCK_M, BLOCK_N, BLOCK_D,
        )  # fmt: skip
    else:
        # Persistent: one program per SM walks the NUM_ITEMS query blocks (a head's blocks adjacent, so
        # they share K/V in L2). The warp-specialized key loop nested in this one compiles as the only
        # specialized loop; the next block's start overlaps this one's end instead of waiting for a new
        # program. On an H200: head dim 128 1.16x at B 16 / 1k keys, 1.03x at B 4 / 4k, the same at 16k;
        # head dim 64 1.27x at 1k (docs/perf.md "v16").
        for item in tl.range(tl.program_id(0), NUM_ITEMS, tl.num_programs(0)):
            bh, b, h, start_m = item_block(item, NUM_M_BLOCKS, Hq, BLOCK_M)
            _fp16_tma_program(
                Q, K, V, O, stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb,
                stride_vh, stride_vn, Hq, GROUP, Nq, Nk, D, qk_scale, bh, b, h, start_m,
                MASK, CAUSAL, UPCAST, BLOCK_M, BLOCK_N, BLOCK_D,
            )  # fmt: skip


@triton.jit
def _fp16_tma_program(
    Q, K, V, O,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    Hq, GROUP, Nq, Nk, D, qk_scale, bh, b, h, start_m,
    MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # One query block of one (batch, head).
    h_kv = h // GROUP
    offs_n = tl.arange(0, BLOCK_N)

    # One 2-D descriptor per head: TMA reads rows past Nq / Nk and columns past D as zeros and the
    # store clips there, so ragged ends need no pointer masks and never touch the next head.
    dq = tl.make_tensor_descriptor(
        Q + b * stride_qb + h * stride_qh,
        shape=[Nq, D],
        strides=[stride_qn, 1],
        block_shape=[BLOCK_M, BLOCK_D],
    )
    dk = tl.make_tensor_descriptor(
        K + b * stride_kb + h_kv * stride_kh,
        shape=[Nk, D],
        strides=[stride_kn, 1],
        block_shape=[BLOCK_N, BLOCK_D],
    )
    dv = tl.make_tensor_descriptor(
        V + b * stride_vb + h_kv * stride_vh,
        shape=[Nk, D],
        strides=[stride_vn, 1],
        block_shape=[BLOCK_N, BLOCK_D],
    )
    do = tl.make_tensor_descriptor(
        O + bh * Nq * D, shape=[Nq, D], strides=[D, 1], block_shape=[BLOCK_M, BLOCK_D]
    )
    q = dq.load([start_m, 0])
    if UPCAST:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    offs_m = start_m + tl.arange(0, BLOCK_M)
    if CAUSAL:
        # Bottom-right causal, not warp-specialized (see the module docstring): blocks every row sees in
        # full, unmasked, then the diagonal band; blocks past `hi` are never visited.
        hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq)
        full = (tl.maximum(tl.minimum(Nk, start_m + Nk - Nq + 1), 0) // BLOCK_N) * BLOCK_N
        for start_n in tl.range(0, full, BLOCK_N):
            acc, l_i, m_i = _fp16_tma_block(
                acc, l_i, m_i, q, dk, dv, start_n, offs_m, offs_n, Nq, Nk, qk_scale, 0, UPCAST,
                O.dtype.element_ty,
            )  # fmt: skip
        for start_n in tl.range(full, hi, BLOCK_N):
            acc, l_i, m_i = _fp16_tma_block(
                acc, l_i, m_i, q, dk, dv, start_n, offs_m, offs_n, Nq, Nk, qk_scale, 2, UPCAST,
                O.dtype.element_ty,
            )  # fmt: skip
    else:
        # One loop: Triton 3.6 warp-specializes one loop per kernel (a second loop, or a branch inside
        # this one, and the pass crashes or gives up). MASK masks the ragged end on every block.
        for start_n in tl.range(0, Nk, BLOCK_N, warp_specialize=True):
            acc, l_i, m_i = _fp16_tma_block(
                acc, l_i, m_i, q, dk, dv, start_n, offs_m, offs_n, Nq, Nk, qk_scale, MASK, UPCAST,
                O.dtype.element_ty,
            )  # fmt: skip

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    do.store([start_m, 0], out.to(O.dtype.element_ty))


def tma_config(head_dim: int, causal: bool, interpret: bool = False) -> BlockConfig:
    """Tiles for ``head_dim`` (padded to a power of two); small ones in the CPU interpreter."""
    block_d = max(32, triton.next_power_of_2(head_dim))
    if interpret:
        return BlockConfig(32, 32, block_d, 4, 1)
    bm, bn, warps, stages = TMA_TILES[(causal, block_d)]
    return BlockConfig(bm, bn, block_d, warps, stages)


def launch_fp16_tma(q, k, v, o, shape, *, cfg: BlockConfig, causal: bool = False) -> None:
    """Launch the TMA kernel; ``q``, ``k``, ``v``, ``o`` must pass :func:`tma_eligible`."""
    _ensure_allocator()
    grid, num_m = grid_for(shape, cfg.block_m)
    # Non-causal launches are persistent: one program per SM (two measured 1-2 % slower on an H200).
    launch_grid = grid if causal else strided_grid(grid[0], q.device, per_sm=1)
    _flash_fp16_tma_kernel[launch_grid](
        q, k, v, o,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        shape.heads_q, shape.group, shape.n_q, shape.n_k, shape.head_dim,
        shape.sm_scale * LOG2E, num_m, grid[0],
        MASK=shape.n_k % cfg.block_n != 0,
        CAUSAL=causal,
        UPCAST=upcast_dots(q),
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_D=cfg.block_d,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )  # fmt: skip


def prefer_tma(head_dim: int, n_k: int, causal: bool) -> bool:
    """Whether :func:`kernels.flash_fp16.flash_attention_fp16` takes the TMA kernel on Hopper.

    Only where the H200 measured it faster than the pointer kernel (docs/bench/fp16_tma_h200.md):
    head dim 128 (96 pads to it) non-causal from 1k keys (1.16-1.18x) and causal from 4k keys
    (1.07-1.14x); head dim 64 non-causal from 4k keys (1.07-1.13x; 0.86x at 1k; causal 0.86-1.0x).
    Head dim 32 was slower (0.92x at N = 2k). Since v12's faster pointer kernel, head dim 64 at 4k keys
    and Nq = N runs 5 % faster on the pointer kernel (docs/bench/fp16_pointer_v12_h200.md), but with one
    query per head (B 8, GQA 32:8, 4k keys) the pointer kernel took 1.32x the TMA kernel's time (`lowbit
    check`, docs/bench/history_v12_h200_check.md): the rule stays.
    """
    block_d = max(32, triton.next_power_of_2(head_dim))
    if causal:
        return block_d == 128 and n_k >= 4096
    return (block_d == 128 and n_k >= 1024) or (block_d == 64 and n_k >= 4096)


def flash_attention_fp16_tma(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """:func:`kernels.flash_fp16.flash_attention_fp16` forced onto the TMA kernel.

    ``q`` (B, Hq, Nq, D), ``k``/``v`` (B, Hkv, Nk, D), Hq % Hkv == 0, fp16 or bf16, D in
    :data:`TMA_HEAD_DIMS`, last dimension contiguous. On a GPU the operands must be on an sm_90 device
    with 16-byte aligned data pointers and strides (a clear error otherwise, never another kernel); the
    CPU interpreter runs it too, for tests. ``causal`` is bottom-right aligned; query rows that see no
    key are zero. Returns a contiguous (B, Hq, Nq, D) tensor in q's dtype.
    """
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=TMA_HEAD_DIMS, method="fp16_tma"
    )
    o, done = make_output(q, shape)
    if done:
        return o
    if not interpreting() and not tma_eligible(q, k, v, o):
        raise ValueError(
            "q, k, v: expected tensors on an sm_90 GPU with 16-byte aligned data pointers and strides "
            f"(TMA), got {q.device} with strides {q.stride()}, {k.stride()}, {v.stride()}"
        )
    cfg = tma_config(shape.head_dim, causal, interpreting())
    launch_fp16_tma(q, k, v, o, shape, cfg=cfg, causal=causal)
    return o
