"""Test-wide set-up: pick the Triton backend before any kernel module is imported."""

from harness.device import select_device

# No GPU here means the CPU interpreter; on the device machine the GPU is used.
DEVICE = select_device(None)


def pytest_collection_modifyitems(config, items):
    """Without a GPU, deselect `gpu` tests (reported as deselected, never silently passed)."""
    if DEVICE == "cuda":
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("gpu") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
