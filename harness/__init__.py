"""lowbit's harness: fuzz attention kernels against an FP32 oracle, time them, record history."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lowbit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
