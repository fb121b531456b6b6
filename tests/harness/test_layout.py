"""The layout's promises that import-linter cannot see: what gets imported, and when."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from harness.search.device import select_device

DEVICE = select_device(None)


def _run(code: str) -> dict:
    command = [sys.executable, "-c", textwrap.dedent(code)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(DEVICE != "cpu", reason="fuzzes in the Triton interpreter")
def test_fuzzing_a_plain_torch_callable_loads_no_triton_kernel():
    seen = _run(
        """
        import json, sys
        from harness.search.device import select_device
        from harness.search.fuzz import fuzz
        from harness.search.targets import load_kernel

        device = select_device("cpu")
        target = load_kernel("tests.harness.broken_kernels:correct_fp32")
        report = fuzz(target, examples=6, seed=1, device=device, profile="ci", database=False)
        print(json.dumps({
            "examples": report.examples,
            "kernels": sorted(m for m in sys.modules if m.startswith("kernels")),
            "triton": "triton" in sys.modules,
        }))
        """
    )
    assert seen["examples"] >= 6
    # The spec types and the backend switch are all the fuzzer needs from kernels/.
    assert not [m for m in seen["kernels"] if m.startswith(("kernels.flash", "kernels.quant"))], seen
    assert not seen["triton"], seen


def test_registry_imports_a_launcher_only_when_it_is_called():
    seen = _run(
        """
        import json, sys
        from harness.search.device import select_device

        select_device(None)
        import kernels

        listed = sorted(kernels.REGISTRY)
        before = sorted(m for m in sys.modules if m.startswith("kernels."))
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
        q = torch.randn(1, 1, 4, 32, dtype=torch.float16, device=device)
        kernels.attention(q, q, q, method="fp16")
        after = sorted(m for m in sys.modules if m.startswith("kernels."))
        print(json.dumps({"listed": listed, "before": before, "after": after}))
        """
    )
    assert "int8" in seen["listed"] and "fp16" in seen["listed"]
    assert not [m for m in seen["before"] if m.startswith(("kernels.flash", "kernels.quant"))], seen
    assert "kernels.flash_fp16" in seen["after"]
    assert "kernels.flash_int8" not in seen["after"]
