"""Which 4/8-bit layout for a KV cache: output rel-L2 of attention with K or V quantized each way.

    python bench/kv_layouts.py        # CPU, float64, about a minute

Compares, at 4 and 8 bits, on Gaussian caches and on caches with channel outliers (6 K channels x10
with an offset of 5, Q on those channels x3, 4 V channels x8): K quantized per token in groups of G
channels along D (G = 32 or 128), or per channel over blocks of T tokens (T = 32, 64 or 128; KIVI's
layout), symmetric (absmax) or asymmetric (min/max), with or without K smoothing (the per-head mean
over the tokens removed first); and V per token in groups of 32, 64 or 128, or per channel over blocks
of T tokens. One operand is quantized at a time, the other is exact, so each number is that operand's
own contribution. The table is in docs/perf.md.
"""

from __future__ import annotations

import argparse
import math

import torch


def attention(q, k, v):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return torch.softmax(s, -1) @ v


def quantize_groups(x, bits, group, symmetric):
    """Round trip of x (..., D) through per-group codes along the last dim (no metadata rounding)."""
    shape = x.shape
    xg = x.reshape(*shape[:-1], shape[-1] // group, group)
    if symmetric:
        top = 2 ** (bits - 1) - 1
        s = xg.abs().amax(-1, keepdim=True) / top
        s[s == 0] = 1
        return (torch.round(xg / s).clamp(-top, top) * s).reshape(shape)
    lo, hi = xg.amin(-1, keepdim=True), xg.amax(-1, keepdim=True)
    s = (hi - lo) / (2**bits - 1)
    s[s == 0] = 1
    return (torch.round((xg - lo) / s).clamp(0, 2**bits - 1) * s + lo).reshape(shape)


def quantize_channels(x, bits, tokens, symmetric):
    """Per channel over blocks of ``tokens`` tokens: x (B, H, N, D)."""
    return quantize_groups(x.transpose(-1, -2), bits, tokens, symmetric).transpose(-1, -2)


def main(argv=None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    torch.manual_seed(0)
    B, H, G, N, D = 1, 8, 4, 4096, 128
    print("| cache | bits | layout | rel-L2 |\n|---|---|---|---|")
    for dist in ("gaussian", "channel outliers"):
        q = torch.randn(B, H * G, 4, D, dtype=torch.float64)
        k = torch.randn(B, H, N, D, dtype=torch.float64)
        v = torch.randn(B, H, N, D, dtype=torch.float64)
        if dist != "gaussian":
            idx = torch.randperm(D)[:6]
            k[..., idx] = k[..., idx] * 10 + 5
            q[..., idx] *= 3
            v[..., torch.randperm(D)[:4]] *= 8
        ref = attention(q, k.repeat_interleave(G, 1), v.repeat_interleave(G, 1))

        def err(kq, vq, ref=ref, q=q):
            out = attention(q, kq.repeat_interleave(G, 1), vq.repeat_interleave(G, 1))
            return float((out - ref).norm() / ref.norm())

        centered = k - k.mean(2, keepdim=True)
        for bits in (4, 8):
            rows = {}
            for sym in (False, True):
                kind = "sym" if sym else "asym"
                for g in (32, 128):
                    rows[f"K per token, G={g}, {kind}"] = err(quantize_groups(k, bits, g, sym), v)
                    rows[f"K per token, G={g}, {kind}, smoothed"] = err(
                        quantize_groups(centered, bits, g, sym), v
                    )
                for t in (32, 64, 128):
                    rows[f"K per channel, T={t}, {kind}"] = err(quantize_channels(k, bits, t, sym), v)
                    rows[f"V per channel, T={t}, {kind}"] = err(k, quantize_channels(v, bits, t, sym))
                for g in (32, 64, 128):
                    rows[f"V per token, G={g}, {kind}"] = err(k, quantize_groups(v, bits, g, sym))
            for name, e in sorted(rows.items(), key=lambda t: t[1]):
                print(f"| {dist} | {bits} | {name} | {e:.2e} |")


if __name__ == "__main__":
    main()
