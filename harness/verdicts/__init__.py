"""Verdicts over recorded history: what regressed between two commits, change points, bisect hints.

Reads the store only; imports no kernels, torch or triton, so a machine that only judges history needs no
GPU stack.
"""
