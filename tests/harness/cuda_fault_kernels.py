"""A kernel that hits a CUDA illegal address on the second distinct case a process runs (GPU only).

After the fault the process's CUDA context is unusable: every later CUDA call fails. The harness must
record the case that caused it and go on in a fresh worker.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tests.harness.crashing_kernels import _case_number, correct


@triton.jit
def _store_far_away(ptr, offset):
    # One element written ~8 TB past the allocation: an illegal address on any GPU.
    tl.store(ptr + offset, 1.0)


def illegal_address_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        scratch = torch.empty(1, device=q.device, dtype=torch.float32)
        _store_far_away[(1,)](scratch, 2**41)
        torch.cuda.synchronize()
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)
