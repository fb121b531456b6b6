"""The device the tests run on (chosen, with Triton configured for it, by the root conftest.py)."""

from harness.search.device import select_device

DEVICE = select_device(None)
