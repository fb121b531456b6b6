"""pytest-benchmark suite for the attention methods against torch SDPA (GPU only, marked ``gpu``).

    pytest bench/bench_attention.py --benchmark-only

Each benchmark synchronizes the device after every call, so a round measures finished GPU work;
pytest-benchmark's own warm-up is on and one extra call before timing keeps Triton compilation and
cuDNN planning out of the numbers. bench/compare_attention.py gives the do_bench medians, ratios and
sageattention comparison used in docs/perf.md.
"""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY

pytestmark = pytest.mark.gpu

SHAPES = [(4, 32, 4096, 64), (4, 32, 4096, 128), (1, 32, 16384, 128)]
# Every registered method (new methods are benchmarked without editing this file), then torch SDPA.
IMPLS = [*sorted(REGISTRY), "sdpa_flash", "sdpa_cudnn"]


def _fn(impl, q, k, v, causal):
    if impl.startswith("sdpa"):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = SDPBackend.FLASH_ATTENTION if impl == "sdpa_flash" else SDPBackend.CUDNN_ATTENTION

        def call():
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

        return call
    from kernels import attention

    return lambda: attention(q, k, v, causal=causal, method=impl)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}h{}n{}d{}".format(*s))
@pytest.mark.parametrize("impl", IMPLS)
def test_attention_speed(benchmark, impl, shape, causal):
    B, H, N, D = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, device="cuda", generator=g).half() for _ in range(3))
    fn = _fn(impl, q, k, v, causal)
    fn()
    torch.cuda.synchronize()

    def run():
        fn()
        torch.cuda.synchronize()

    benchmark.extra_info.update(B=B, H=H, N=N, D=D, causal=causal, impl=impl)
    benchmark.extra_info["tflops_formula"] = "4*B*H*N*N*D (x0.5 causal) / time"
    benchmark.pedantic(run, rounds=20, iterations=5, warmup_rounds=3)
