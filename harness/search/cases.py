"""One fuzz example: a shape, a dtype, a value distribution and a seed, and the tensors they define.

A :class:`Case` is plain data. Its tensors are a pure function of its fields (:meth:`Case.make_inputs`
draws them from a CPU ``torch.Generator`` seeded with ``seed`` and only then moves them to the device), so
the same case gives bit-identical inputs on any machine, and its :attr:`case_id` names it stably across
processes, commits and machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.search.distributions import DISTRIBUTION_NAMES, draw_tensors, family_of

DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16}

# Seeds are drawn from [0, SEED_LIMIT): torch.Generator.manual_seed accepts any 64-bit value, 32 bits
# keep the JSON short and readable.
SEED_LIMIT = 2**32

# How q, k and v sit in memory (values never depend on it; only the last dimension is ever contiguous
# in the non-default layouts, as the kernel API allows):
#   hnd       three contiguous (B, H, N, D) tensors (the default; a case without "layout" means this).
#   bnhd      each a (B, N, H, D) contiguous tensor transposed to HND, as most model code holds them.
#   fused     views into one fused projection output (B, N, Hq + 2 Hkv, D) when Nq == Nk (self-attention);
#             otherwise q on its own (BNHD) and k, v views into one (B, Nk, 2 Hkv, D) KV projection.
#   kv_cache  q contiguous; k and v the first Nk tokens of (B, Hkv, Nk + KV_CACHE_SPARE, D) caches whose
#             unused tail holds NaN, so a kernel that reads past Nk sees it.
LAYOUTS: tuple[str, ...] = ("hnd", "bnhd", "fused", "kv_cache")
DEFAULT_LAYOUT = "hnd"
KV_CACHE_SPARE = 64


def dtype_name(dtype: torch.dtype | str) -> str:
    """ "float16"/"bfloat16" for a torch dtype or one of those names; ValueError otherwise."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name in DTYPES:
            return name
    else:
        for name, value in DTYPES.items():
            if value == dtype:
                return name
    raise ValueError(f"unsupported dtype {dtype!r}: expected one of {', '.join(DTYPES)}")


def _require_int(d: dict, key: str, low: int) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"case field {key!r} must be an integer >= {low}, got {value!r}")
    return value


def _validated(d: dict) -> dict:
    """The fields of a case, checked; ValueError naming the first bad one."""
    if not isinstance(d, dict):
        raise ValueError(f"a case must be a JSON object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(Case)}
    # "layout" was added later: a case stored without it is an HND case, with its old id.
    d = {"layout": DEFAULT_LAYOUT, **d}
    missing = sorted(names - d.keys())
    extra = sorted(d.keys() - names)
    if missing or extra:
        raise ValueError(f"bad case fields: missing {missing}, unexpected {extra}")
    hq = _require_int(d, "hq", 1)
    hkv = _require_int(d, "hkv", 1)
    for key in ("batch", "nq", "nk", "head_dim"):
        _require_int(d, key, 1)
    if _require_int(d, "seed", 0) >= 2**63:
        raise ValueError(f"case field 'seed' must be < 2**63, got {d['seed']}")
    if hq % hkv:
        raise ValueError(f"hq ({hq}) must be a multiple of hkv ({hkv})")
    if d["dtype"] not in DTYPES:
        raise ValueError(f"case field 'dtype' must be one of {', '.join(DTYPES)}, got {d['dtype']!r}")
    if not isinstance(d["causal"], bool):
        raise ValueError(f"case field 'causal' must be true or false, got {d['causal']!r}")
    sm_scale = d["sm_scale"]
    if sm_scale is not None:
        if isinstance(sm_scale, bool) or not isinstance(sm_scale, (int, float)) or not 0 < sm_scale < 1e6:
            raise ValueError(f"case field 'sm_scale' must be null or a positive number, got {sm_scale!r}")
        sm_scale = float(sm_scale)
    if d["distribution"] not in DISTRIBUTION_NAMES:
        raise ValueError(
            f"case field 'distribution' must be one of {', '.join(DISTRIBUTION_NAMES)}, "
            f"got {d['distribution']!r}"
        )
    if d["layout"] not in LAYOUTS:
        raise ValueError(f"case field 'layout' must be one of {', '.join(LAYOUTS)}, got {d['layout']!r}")
    return {**d, "sm_scale": sm_scale}


@dataclass(frozen=True)
class Case:
    """Shapes are HND: q is (batch, hq, nq, head_dim), k and v are (batch, hkv, nk, head_dim)."""

    batch: int
    hq: int
    hkv: int
    nq: int
    nk: int
    head_dim: int
    dtype: str
    causal: bool
    sm_scale: float | None
    distribution: str
    seed: int
    layout: str = DEFAULT_LAYOUT

    def __post_init__(self) -> None:
        valid = _validated(dataclasses.asdict(self))
        # An integral sm_scale is stored as float so that equal cases have equal JSON and case_id.
        object.__setattr__(self, "sm_scale", valid["sm_scale"])

    @property
    def family(self) -> str:
        """Budget family of the distribution, one of ``kernels.registry.DISTRIBUTION_FAMILIES``."""
        return family_of(self.distribution)

    @property
    def head_layout(self) -> str:
        if self.hq == self.hkv:
            return "mha"
        return "mqa" if self.hkv == 1 else "gqa"

    @property
    def shape_class(self) -> str:
        """Coarse label for coverage tables: head layout / length relation / masking."""
        rel = "nq=nk" if self.nq == self.nk else ("nq<nk" if self.nq < self.nk else "nq>nk")
        return f"{self.head_layout}/{rel}/{'causal' if self.causal else 'full'}"

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def params(self) -> dict:
        """JSON-safe dict of every field, keys sorted; ``layout`` only when it is not the default, so a
        contiguous case keeps the JSON and :attr:`case_id` it had before layouts existed."""
        d = dataclasses.asdict(self)
        if d["layout"] == DEFAULT_LAYOUT:
            del d["layout"]
        return dict(sorted(d.items()))

    def to_json(self) -> str:
        """Canonical JSON of :meth:`params`: sorted keys, no whitespace."""
        return json.dumps(self.params(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_params(cls, d: dict) -> Case:
        """Inverse of :meth:`params`. ValueError naming the field for missing, extra or bad values."""
        return cls(**_validated(d))

    @classmethod
    def from_json(cls, text: str) -> Case:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"case is not valid JSON: {exc}") from None
        return cls.from_params(d)

    @property
    def case_id(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON (seed included)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def q_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.hq, self.nq, self.head_dim)

    @property
    def kv_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.hkv, self.nk, self.head_dim)

    def make_values(
        self, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contiguous q, k, v in ``self.dtype`` on ``device``, drawn from the seed alone (finite)."""
        q, k, v = draw_tensors(self.distribution, self.seed, self.q_shape, self.kv_shape, self.kv_shape)
        return tuple(t.to(self.torch_dtype).to(device) for t in (q, k, v))

    def lay_out(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
        """Fresh copies of ``q, k, v`` in this case's :data:`LAYOUTS` entry, and the tensors owning their
        memory (to check that nothing outside the views was written)."""
        b, hq, hkv = self.batch, self.hq, self.hkv
        if self.layout == "hnd":
            views = tuple(t.clone(memory_format=torch.contiguous_format) for t in (q, k, v))
            return views, views
        if self.layout == "bnhd":
            bases = tuple(t.transpose(1, 2).contiguous() for t in (q, k, v))
            return tuple(t.transpose(1, 2) for t in bases), bases
        if self.layout == "fused":
            parts = (q, k, v) if self.nq == self.nk else (k, v)
            base = torch.cat([t.transpose(1, 2) for t in parts], dim=2).contiguous()
            heads = (hq, hkv, hkv) if self.nq == self.nk else (hkv, hkv)
            splits = torch.split(base, heads, dim=2)
            views = tuple(t.transpose(1, 2) for t in splits)
            if self.nq == self.nk:
                return views, (base,)
            q_base = q.transpose(1, 2).contiguous()
            return (q_base.transpose(1, 2), *views), (q_base, base)
        caches = []
        for t in (k, v):
            shape = (b, hkv, self.nk + KV_CACHE_SPARE, self.head_dim)
            cache = torch.full(shape, float("nan"), dtype=t.dtype, device=t.device)
            cache[:, :, : self.nk] = t
            caches.append(cache)
        q_own = q.clone(memory_format=torch.contiguous_format)
        return (q_own, caches[0][:, :, : self.nk], caches[1][:, :, : self.nk]), (q_own, *caches)

    def make_inputs(
        self, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as the kernel receives them: the seed's values (:meth:`make_values`) in the case's
        memory layout."""
        return self.lay_out(*self.make_values(device))[0]

    def repro_command(self, kernel_ref: str, extra_args: Sequence[str] = ()) -> str:
        """One shell line that re-runs exactly this case with ``lowbit fuzz --case``."""
        words = ["lowbit", "fuzz", "--kernel", kernel_ref, *extra_args, "--case", self.to_json()]
        return " ".join(shlex.quote(w) for w in words)

    def __str__(self) -> str:
        scale = "default" if self.sm_scale is None else f"{self.sm_scale:g}"
        return (
            f"B={self.batch} Hq={self.hq} Hkv={self.hkv} Nq={self.nq} Nk={self.nk} D={self.head_dim} "
            f"{self.dtype} causal={self.causal} sm_scale={scale} {self.distribution} seed={self.seed}"
            + ("" if self.layout == DEFAULT_LAYOUT else f" layout={self.layout}")
        )
