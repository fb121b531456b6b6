"""The search: cases, value distributions, the oracle, error metrics, properties and the fuzz loop.

Judges any attention callable against an FP32/FP64 oracle. Imports nothing of the store or the CLI, and
loads lowbit's own Triton kernels only when a registered method is asked for by name.
"""
