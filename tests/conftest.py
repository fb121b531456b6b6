"""Test-wide set-up: pick the Triton backend before any kernel module is imported."""

from harness.device import select_device

# No GPU here means the CPU interpreter; on the device machine the GPU is used.
DEVICE = select_device(None)
