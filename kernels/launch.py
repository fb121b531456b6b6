"""Launch geometry shared by the attention kernels: block sizes, grid, output allocation."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._validate import AttentionShape

LOG2E = math.log2(math.e)
MAX_GRID = 2**31 - 1


@dataclass(frozen=True)
class BlockConfig:
    block_m: int
    block_n: int
    block_d: int
    num_warps: int
    num_stages: int


# (BLOCK_M, BLOCK_N, num_warps, num_stages) on the GPU per kernel and padded head dim. Chosen so the
# compiled kernels do not spill registers (ptxas -v for sm_90a) and fit 227 KB of shared memory, then
# the fastest of the candidates timed on an H200 (bench/gpu_check.py --sweep; docs/perf.md).
GPU_TILES: dict[tuple[str, int], tuple[int, int, int, int]] = {
    ("fp16", 32): (128, 64, 8, 3),
    ("fp16", 64): (128, 64, 8, 3),
    ("fp16", 128): (128, 128, 8, 2),
    ("fp16", 256): (128, 32, 8, 3),
    ("int8", 32): (64, 64, 4, 3),
    ("int8", 64): (64, 64, 4, 3),
    ("int8", 128): (64, 64, 4, 3),
    ("int8", 256): (64, 32, 8, 2),
    ("int8_qk", 32): (64, 64, 4, 3),
    ("int8_qk", 64): (64, 64, 4, 3),
    ("int8_qk", 128): (128, 128, 8, 3),
    ("int8_qk", 256): (64, 32, 8, 2),
}


def block_config(method: str, head_dim: int, interpret: bool) -> BlockConfig:
    """Tile sizes for ``method`` at ``head_dim``.

    The head dim is padded to a power of two (96 -> 128) and masked. INT8 dots need a reduction
    dimension of at least 32, so BLOCK_D and BLOCK_N (the P·V reduction) are never below 32. In the
    CPU interpreter small tiles keep each numpy step cheap; on the GPU see :data:`GPU_TILES`.
    """
    block_d = max(32, triton.next_power_of_2(head_dim))
    if interpret:
        return BlockConfig(32, 32, block_d, 4, 1)
    kernel = "int8_qk" if method.startswith("int8_qk") else method
    bm, bn, warps, stages = GPU_TILES[(kernel, block_d)]
    return BlockConfig(bm, bn, block_d, warps, stages)


def grid_for(shape: AttentionShape, block_m: int) -> tuple[tuple[int], int]:
    """Flat grid (query blocks x batch x heads on axis 0) and the number of query blocks per head."""
    num_m = triton.cdiv(shape.n_q, block_m)
    programs = num_m * shape.batch * shape.heads_q
    if programs > MAX_GRID:
        raise ValueError(
            f"shape: expected at most {MAX_GRID} query blocks of {block_m} rows in all, got {programs} "
            f"(B={shape.batch}, Hq={shape.heads_q}, Nq={shape.n_q})"
        )
    return (programs,), num_m


@triton.jit
def program_block(NUM_M_BLOCKS, Hq, BLOCK_M: tl.constexpr):
    """This program's place in :func:`grid_for`'s flat grid: ``(bh, b, h, start_m)``.

    Query blocks of one (batch, head) are adjacent, so they share K/V in L2, and the block with the most
    keys under a causal mask goes first. ``bh`` is int64: it multiplies whole-head strides.
    """
    return item_block(tl.program_id(0), NUM_M_BLOCKS, Hq, BLOCK_M)


@triton.jit
def item_block(item, NUM_M_BLOCKS, Hq, BLOCK_M: tl.constexpr):
    """Query block ``item`` of :func:`grid_for`'s order, for a grid that strides over them
    (:func:`strided_grid`)."""
    bh = (item // NUM_M_BLOCKS).to(tl.int64)
    start_m = (NUM_M_BLOCKS - 1 - item % NUM_M_BLOCKS) * BLOCK_M
    return bh, bh // Hq, bh % Hq, start_m


# Items of a strided grid whose flags one program loads at once (:func:`wide_items`).
WIDE_CHUNK = tl.constexpr(64)


@triton.jit
def wide_items(FLAGS, chunk, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, CHUNK: tl.constexpr):
    """Whether any of this program's ``CHUNK`` items from ``chunk`` on, in a strided grid over
    ``NUM_ITEMS`` query blocks (:func:`strided_grid`), belongs to a KV head flagged nonzero in the int32
    ``FLAGS`` (B * Hkv): one vector load, so a program with no flagged head pays one memory round trip
    per chunk, not one per item."""
    items = tl.program_id(0) + chunk + tl.arange(0, CHUNK) * tl.num_programs(0)
    bh = items // NUM_M_BLOCKS
    bh_kv = (bh // Hq) * (Hq // GROUP) + (bh % Hq) // GROUP
    return tl.max(tl.load(FLAGS + bh_kv, mask=items < NUM_ITEMS, other=0), axis=0) > 0


@triton.jit
def wide_item(FLAGS, chunk, j, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, BLOCK_M: tl.constexpr):
    """Item ``j`` of this program's chunk (:func:`wide_items`): ``(run, bh, b, h, start_m, bh_kv)``, ``run``
    whether it exists and its KV head is flagged."""
    item = tl.program_id(0) + chunk + j * tl.num_programs(0)
    bh, b, h, start_m = item_block(item, NUM_M_BLOCKS, Hq, BLOCK_M)
    bh_kv = b * (Hq // GROUP) + h // GROUP
    run = (item < NUM_ITEMS) & (tl.load(FLAGS + bh_kv, mask=item < NUM_ITEMS, other=0) != 0)
    return run, bh, b, h, start_m, bh_kv


@functools.lru_cache(maxsize=8)
def sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def strided_grid(items: int, device: torch.device, per_sm: int = 2) -> tuple[int]:
    """A grid of at most ``per_sm`` programs per SM (four in the interpreter) for a launch whose programs
    stride over ``items`` work items: one that has real work for few of them, where a program per item
    would cost waves of block launches (about 5 % of a 1k-key call), or a persistent kernel."""
    if device.type != "cuda":
        return (min(items, 4),)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return (min(items, per_sm * sm_count(index)),)


def make_output(q: torch.Tensor, shape: AttentionShape) -> tuple[torch.Tensor, bool]:
    """Allocate the (B, Hq, Nq, D) output; ``done`` is True when no launch is needed.

    Empty problems need no launch: with Nq == 0 (or B == 0, Hq == 0) the output is empty, and with
    Nk == 0 every query sees no key, so by the fully-masked-row rule its output is zero.
    """
    s = shape
    if s.batch * s.heads_q * s.n_q == 0:
        return q.new_empty((s.batch, s.heads_q, s.n_q, s.head_dim)), True
    if s.n_k == 0:
        return q.new_zeros((s.batch, s.heads_q, s.n_q, s.head_dim)), True
    return q.new_empty((s.batch, s.heads_q, s.n_q, s.head_dim)), False
