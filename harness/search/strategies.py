"""Hypothesis strategies that draw a :class:`~harness.search.cases.Case` (parameters and a seed, no tensors).

Draw order and shrink direction are chosen so that a shrunk failure is small and readable: sequence
lengths shrink towards 1, head layouts towards MHA, ``sm_scale`` towards the default, distributions
towards plain Gaussian, memory layouts towards contiguous HND, seeds towards 0.

Sequence lengths are drawn densely around block boundaries (multiples of 16, 32, 64, 128 and their
neighbours), besides tiny and arbitrary lengths; nq and nk are drawn independently (so both nq < nk and
nq > nk occur) or equal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hypothesis import strategies as st

from harness.search.cases import DTYPES, LAYOUTS, SEED_LIMIT, Case
from harness.search.distributions import DISTRIBUTION_NAMES
from harness.search.profiles import SizeLimits

if TYPE_CHECKING:
    from harness.search.domain import Domain

BLOCKS = (16, 32, 64, 128)
# An explicit softmax scale is drawn as a multiple of the default 1/sqrt(D): never 1, so a kernel that
# ignores sm_scale is wrong on every one; at most 2, so the logits stay in the regime of the value
# distribution's family (a "gaussian" case does not silently become a "saturating" one).
SCALE_FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)


def explicit_scale(factor: float, head_dim: int) -> float:
    """``factor / sqrt(head_dim)`` rounded to 6 significant digits (short, exact in the case JSON)."""
    return float(f"{factor / math.sqrt(head_dim):.6g}")


# Head dims tried against a registered spec that does not claim them: it must raise ValueError.
PROBE_HEAD_DIMS = (16, 32, 48, 64, 80, 96, 128, 160, 192, 256)
# Head dims an example outside a learned domain draws from: every one models use.
ALL_HEAD_DIMS = (32, 64, 80, 96, 128, 160, 192, 256)
# With a learned domain, one example in OUTSIDE_ONE_IN is drawn outside it (it must still be refused or
# right); the rest, 90%, inside.
OUTSIDE_ONE_IN = 10
# One example in OFF_SPEC_ONE_IN uses a head dim or dtype the spec does not claim.
OFF_SPEC_ONE_IN = 20


@st.composite
def seq_lens(draw, max_n: int, multiple: int = 1) -> int:
    if multiple > 1:
        # Whole multiples only, shrinking towards one multiple (even above max_n: the domain wins).
        return multiple * draw(st.integers(1, max(1, max_n // multiple)))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.integers(1, min(8, max_n)))
    if kind == 1:
        blocks = [b for b in BLOCKS if b <= max_n] or [max_n]
        block = draw(st.sampled_from(blocks))
        mult = draw(st.integers(1, max(1, max_n // block)))
        offset = draw(st.sampled_from((0, -1, 1)))
        return min(max_n, max(1, block * mult + offset))
    return draw(st.integers(1, max_n))


def _heads(draw, max_h: int, choices: tuple[str, ...]) -> tuple[int, int]:
    heads = draw(st.sampled_from(choices))
    if heads == "gqa" and max_h >= 4:
        hkv = draw(st.integers(2, max_h // 2))
        group = draw(st.sampled_from([g for g in (2, 4, 8) if hkv * g <= max_h]))
        return hkv * group, hkv
    if heads == "mqa" and max_h >= 2:
        return draw(st.integers(2, max_h)), 1
    hq = draw(st.integers(1, max_h))
    return hq, hq


@st.composite
def cases(
    draw,
    head_dims: tuple[int, ...],
    dtypes: tuple[str, ...],
    limits: SizeLimits,
    probe_unclaimed: bool = False,
    distributions: tuple[str, ...] = DISTRIBUTION_NAMES,
    domain: Domain | None = None,
) -> Case:
    """A case within ``limits`` using the claimed ``head_dims``/``dtypes``.

    With ``probe_unclaimed`` (for registered specs), about one example in :data:`OFF_SPEC_ONE_IN` uses
    an unclaimed head dim or dtype instead, to check the kernel refuses it with ValueError.
    ``distributions`` restricts the value distributions drawn. With a ``domain`` (learned by probing or
    stated), nine examples in ten lie inside it and the tenth anywhere; shrinking goes inside.
    """
    distribution = draw(st.sampled_from(distributions))
    inside = domain is not None and draw(st.integers(1, OUTSIDE_ONE_IN)) < OUTSIDE_ONE_IN
    multiple = domain.length_multiple if inside else 1
    nq = draw(seq_lens(limits.max_n, multiple))
    nk = (
        nq
        if (inside and domain.same_length) or draw(st.booleans())
        else draw(seq_lens(limits.max_n, multiple))
    )
    causal = draw(st.sampled_from(domain.causal if inside else (False, True)))
    max_bh = max(1, limits.max_work // (nq * nk))
    max_h = max(1, min(limits.max_hq, max_bh))
    hq, hkv = _heads(draw, max_h, domain.heads if inside else ("mha", "gqa", "mqa"))
    batch = draw(st.integers(1, max(1, min(limits.max_batch, max_bh // hq))))

    head_dim_choices, dtype_choices = tuple(head_dims), tuple(dtypes)
    if inside:
        head_dim_choices, dtype_choices = domain.head_dims, domain.dtypes
    elif domain is not None:
        head_dim_choices, dtype_choices = ALL_HEAD_DIMS, tuple(DTYPES)
    elif probe_unclaimed and draw(st.integers(1, OFF_SPEC_ONE_IN)) == OFF_SPEC_ONE_IN:
        other_dims = tuple(d for d in PROBE_HEAD_DIMS if d not in head_dims)
        other_dtypes = tuple(d for d in DTYPES if d not in dtypes)
        if other_dtypes and (not other_dims or draw(st.booleans())):
            dtype_choices = other_dtypes
        elif other_dims:
            head_dim_choices = other_dims
    head_dim = draw(st.sampled_from(head_dim_choices))
    dtype = draw(st.sampled_from(dtype_choices))
    factor = draw(st.one_of(st.none(), st.sampled_from(SCALE_FACTORS)))
    sm_scale = None if factor is None else explicit_scale(factor, head_dim)
    # Shrinks towards contiguous HND (the first layout).
    layout = draw(st.sampled_from(domain.layouts if inside else LAYOUTS))
    seed = draw(st.integers(0, SEED_LIMIT - 1))
    return Case(
        batch=batch,
        hq=hq,
        hkv=hkv,
        nq=nq,
        nk=nk,
        head_dim=head_dim,
        dtype=dtype,
        causal=causal,
        sm_scale=sm_scale,
        distribution=distribution,
        seed=seed,
        layout=layout,
    )
