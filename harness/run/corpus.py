"""The fixed regression corpus: the same cases on every commit, so each case's history lines up.

A corpus is a list of :class:`~harness.search.cases.Case` built from shape templates crossed with value
distributions, sized by the suite (``quick``: one case per distribution family; ``ci``: every concrete
distribution; ``nightly``: every distribution on every shape) and the device: on the CPU interpreter the
shapes are tiny (a flash-attention forward there costs tens of milliseconds even at N=64), on a GPU they
are the sizes models run at, and the GPU ``ci`` suite adds the benchmark shapes (head dims 64 and 128,
N 4k-16k, causal and not) so the speed history is taken where speed is claimed. Everything is
deterministic: a template's seed derives from its name, so the same template gives the same case id in
every suite, on every commit and machine.

Cases are filtered to what the kernel claims (head dims, dtypes): one corpus per kernel.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.search.cases import Case
from harness.search.distributions import DISTRIBUTION_NAMES

SUITES = ("quick", "ci", "nightly")


@dataclass(frozen=True)
class Template:
    """One corpus case before the kernel's head dim and dtype are chosen."""

    name: str
    batch: int
    hq: int
    hkv: int
    nq: int
    nk: int
    causal: bool
    distribution: str
    # Pinned for benchmark-sized cases (the shapes speed is claimed at); None: the corpus chooses.
    head_dim: int | None = None
    dtype: str | None = None


# CPU interpreter: shapes of tens of tokens, two or four heads. The quick set is the README's main job
# (the whole registry in a minute or two on two cores), so it keeps one case per family.
_CPU_QUICK = (
    Template("cpu/mha", 1, 2, 2, 64, 64, False, "gaussian"),
    Template("cpu/mha-causal", 1, 2, 2, 64, 64, True, "channel_outliers"),
    Template("cpu/gqa-nq<nk", 1, 4, 2, 16, 80, False, "attention_sink"),
    Template("cpu/mqa-odd-causal", 1, 2, 1, 37, 37, True, "zero_tokens"),
    Template("cpu/nq>nk", 1, 2, 2, 48, 32, False, "fp16_limit"),
    Template("cpu/small-causal", 1, 2, 2, 40, 56, True, "gaussian_tiny"),
)
# ci and nightly: every concrete distribution, on shapes that alternate layout, lengths and masking.
_CPU_CI_SHAPES = (
    ("mha-odd", (1, 2, 2, 33, 47, False)),
    ("gqa-causal", (2, 4, 2, 40, 40, True)),
)
_CPU_NIGHTLY_SHAPES = (
    ("mha-128", (1, 2, 2, 128, 128, False)),
    ("mqa-decode", (2, 4, 1, 1, 96, False)),
    ("gqa-causal-long", (1, 4, 2, 96, 160, True)),
)

# GPU: model-sized shapes.
_GPU_QUICK = (
    Template("gpu/mha-1k", 2, 8, 8, 1024, 1024, False, "gaussian"),
    Template("gpu/mha-1k-causal", 2, 8, 8, 1024, 1024, True, "channel_outliers"),
    Template("gpu/gqa-2k-causal", 1, 32, 8, 2048, 2048, True, "gaussian"),
    Template("gpu/decode-4k", 8, 32, 8, 1, 4096, False, "attention_sink"),
)
_GPU_CI_SHAPES = (
    ("mha-odd-1000", (2, 8, 8, 1000, 1000, False)),
    ("gqa-2k-causal", (1, 32, 8, 2048, 2048, True)),
    ("chunked-prefill", (2, 16, 4, 512, 4096, True)),
)
# Benchmark-sized: the shapes docs/perf.md states speed at (head dims 64 and 128, N 4k-16k, causal and
# not, fp16, Gaussian), so every commit's history carries the speeds that matter; at N <= 2048 launch
# overhead dominates a kernel's time.
_GPU_BENCH = (
    Template("gpu/bench/hd128-16k", 1, 32, 32, 16384, 16384, False, "gaussian", 128, "float16"),
    Template("gpu/bench/hd128-16k-causal", 1, 32, 32, 16384, 16384, True, "gaussian", 128, "float16"),
    Template("gpu/bench/hd128-4k", 4, 32, 32, 4096, 4096, False, "gaussian", 128, "float16"),
    Template("gpu/bench/hd64-16k", 1, 32, 32, 16384, 16384, False, "gaussian", 64, "float16"),
    Template("gpu/bench/hd64-4k-causal", 4, 32, 32, 4096, 4096, True, "gaussian", 64, "float16"),
)
_GPU_NIGHTLY_SHAPES = (
    ("gqa-8k-causal", (1, 16, 4, 8192, 8192, True)),
    ("batch16-512", (16, 16, 16, 512, 512, False)),
    ("mqa-decode-16k", (16, 32, 1, 1, 16384, False)),
)


def _sweep(prefix: str, shapes: tuple[tuple[str, tuple], ...]) -> tuple[Template, ...]:
    """Every concrete distribution once, the shapes taking turns."""
    return tuple(
        Template(f"{prefix}/{shapes[i % len(shapes)][0]}/{name}", *shapes[i % len(shapes)][1], name)
        for i, name in enumerate(DISTRIBUTION_NAMES)
    )


def _nightly_sweep(prefix: str, shapes: tuple[tuple[str, tuple], ...]) -> tuple[Template, ...]:
    """Every concrete distribution on every shape."""
    return tuple(
        Template(f"{prefix}/{shape}/{name}", *dims, name)
        for shape, dims in shapes
        for name in DISTRIBUTION_NAMES
    )


def templates(suite: str, device: str) -> tuple[Template, ...]:
    """The templates of ``suite`` on ``device`` ("cpu" or "cuda"); each suite contains the smaller ones."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")
    if device == "cpu":
        tiers = (_CPU_QUICK, _sweep("cpu", _CPU_CI_SHAPES), _nightly_sweep("cpu", _CPU_NIGHTLY_SHAPES))
    elif device == "cuda":
        tiers = (
            _GPU_QUICK,
            _sweep("gpu", _GPU_CI_SHAPES) + _GPU_BENCH,
            _nightly_sweep("gpu", _GPU_NIGHTLY_SHAPES),
        )
    else:
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    return tuple(t for tier in tiers[: SUITES.index(suite) + 1] for t in tier)


def _template_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _primary_head_dim(head_dims: Sequence[int]) -> int:
    # 64 is the everyday head dim and cheap in the interpreter; otherwise the smallest claimed.
    return 64 if 64 in head_dims else min(head_dims)


def build_corpus(suite: str, device: str, head_dims: Sequence[int], dtypes: Sequence[str]) -> list[Case]:
    """The regression corpus of ``suite`` on ``device`` for a kernel claiming ``head_dims`` and ``dtypes``.

    Every template is run at the primary head dim, its dtype alternating over the kernel's dtypes. The
    ``ci`` and ``nightly`` suites (and every GPU suite) add one case per other claimed head dim, so each
    head dim the kernel claims is exercised. Returned in a fixed order, without duplicates.
    """
    if not head_dims:
        raise ValueError("build_corpus: expected at least one head dim")
    if not dtypes:
        raise ValueError("build_corpus: expected at least one dtype")
    dims = sorted(set(head_dims))
    dtype_order = sorted(set(dtypes), key=lambda d: (d != "float16", d))
    primary = _primary_head_dim(dims)
    chosen = templates(suite, device)
    cases: list[Case] = []
    # The dtype alternates over the unpinned templates only, so adding pinned ones never changes the
    # case ids (and cuts the histories) of the templates after them.
    unpinned = [t for t in chosen if t.head_dim is None]
    for index, template in enumerate(unpinned):
        cases.append(_case(template, primary, dtype_order[index % len(dtype_order)]))
    if suite != "quick" or device == "cuda":
        # One sweep case per extra head dim, on the first two templates (non-causal and causal).
        for extra in (d for d in dims if d != primary):
            for index, template in enumerate(unpinned[:2]):
                dtype = dtype_order[(index + 1) % len(dtype_order)]
                cases.append(_case(template, extra, dtype))
    for template in chosen:
        # A pinned shape runs only where the kernel claims its head dim; in its dtype where claimed.
        if template.head_dim is not None and template.head_dim in dims:
            dtype = template.dtype if template.dtype in dtype_order else dtype_order[0]
            cases.append(_case(template, template.head_dim, dtype))
    return list(_unique(cases))


def _case(template: Template, head_dim: int, dtype: str) -> Case:
    return Case(
        batch=template.batch,
        hq=template.hq,
        hkv=template.hkv,
        nq=template.nq,
        nk=template.nk,
        head_dim=head_dim,
        dtype=dtype,
        causal=template.causal,
        sm_scale=None,
        distribution=template.distribution,
        seed=_template_seed(template.name),
    )


def _unique(cases: Iterable[Case]) -> Iterable[Case]:
    seen: set[str] = set()
    for case in cases:
        if case.case_id not in seen:
            seen.add(case.case_id)
            yield case


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (1 <= I <= N) into ``(I, N)``; ValueError with the expected form otherwise."""
    index_text, sep, count_text = text.partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"malformed shard {text!r}: expected I/N with integers, e.g. 1/4") from None
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"malformed shard {text!r}: expected 1 <= I <= N, e.g. 1/4")
    return index, count


def shard_of(case_id: str, count: int) -> int:
    """Shard (1..count) a case belongs to: a hash of its id, so the split is stable and even."""
    digest = hashlib.sha256(case_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(case_id: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    index, count = shard
    return shard_of(case_id, count) == index


def case_work(case: Case) -> int:
    """Rough cost of a case (multiply-adds of QK^T): used to keep the CPU interpreter's cases small."""
    return case.batch * case.hq * case.nq * case.nk * case.head_dim
