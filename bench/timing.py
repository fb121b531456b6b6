"""What the attention benchmarks share: SDPA's backends as callables, and one timed, checked row."""

from __future__ import annotations

import functools
from collections.abc import Callable


def _sdpa(sdpa_kernel, backend, q, k, v, causal):
    import torch

    with sdpa_kernel(backend):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


def sdpa_backends(q, k, v, causal: bool) -> dict[str, Callable]:
    """SDPA's flash and cuDNN backends on ``q``, ``k``, ``v`` as zero-argument callables (GPU only)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION))
    return {name: functools.partial(_sdpa, sdpa_kernel, b, q, k, v, causal) for name, b in backends}


def timed_row(
    fn: Callable, ref, *, interpret: bool, flops: float, select=None, **labels
) -> tuple[dict, object]:
    """Run ``fn`` once, time it (do_bench median on a GPU, NaN in the interpreter) and measure its rel-L2
    against ``ref`` on ``select(output)`` (the whole output by default). Returns the row (``labels``
    first) and the output."""
    import triton

    out = fn()
    ms = float("nan") if interpret else triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
    o = (out if select is None else select(out)).float()
    row = dict(labels, ms=ms, tflops=flops / ms / 1e9, rel_l2=float((o - ref).norm() / ref.norm()))
    return row, out
