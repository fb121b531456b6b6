"""A kernel's domain: which head dims, dtypes, masks, head layouts, lengths and memory layouts it accepts.

Many research kernels support a narrow domain (MHA only, Nq = Nk, lengths a multiple of 64, two head
dims, fp16). Searched blindly, such a kernel refuses nearly every example and a bug inside its domain goes
unseen. So before the search, :func:`probe_domain` calls the kernel on tiny cases, one axis at a time,
and infers the domain from what it refuses (``ValueError``/``NotImplementedError``); the search then
draws nine examples in ten inside it and the tenth outside, where the kernel must still refuse or be
right. Axes stated by the user (``lowbit fuzz --head-dims ...`` or ``--domain JSON``) are not probed.

A probe call that returns, or raises anything else, counts as accepted: whether its answer is right is
the search's business. Given ``check`` (the isolated checker ``lowbit fuzz`` and the pytest plugin use),
every probe runs in the kernel's worker process like any searched case, so a kernel that segfaults or
hangs on a probe shape costs a worker, not the search; such a probe counts as accepted and the search
finds, shrinks and reports the crash.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from harness.search.cases import DTYPES, LAYOUTS, Case
from harness.search.properties import UNSUPPORTED_EXCEPTIONS
from harness.search.strategies import ALL_HEAD_DIMS

HEAD_LAYOUTS: tuple[str, ...] = ("mha", "gqa", "mqa")
LENGTH_MULTIPLES: tuple[int, ...] = (1, 16, 32, 64, 128)
# Base lengths of the probes: a multiple of every entry of LENGTH_MULTIPLES.
_BASE_N = 128
# (hq, hkv) of each head layout in a probe.
_PROBE_HEADS = {"mha": (2, 2), "gqa": (4, 2), "mqa": (2, 1)}
# A length that is a multiple of m and of nothing larger in LENGTH_MULTIPLES (33 for m = 1).
_LENGTH_OF_MULTIPLE = {1: 33, 16: 48, 32: 96, 64: 192, 128: 128}


class DomainError(ValueError):
    """A stated domain that names nothing usable; the message says which field and what was expected."""


@dataclass(frozen=True)
class Domain:
    """What a kernel accepts. Lengths: ``same_length`` means only Nq == Nk; every length is a multiple of
    ``length_multiple``."""

    head_dims: tuple[int, ...] = ALL_HEAD_DIMS
    dtypes: tuple[str, ...] = tuple(DTYPES)
    causal: tuple[bool, ...] = (False, True)
    heads: tuple[str, ...] = HEAD_LAYOUTS
    same_length: bool = False
    length_multiple: int = 1
    layouts: tuple[str, ...] = LAYOUTS

    def __post_init__(self) -> None:
        _check_values("head_dims", self.head_dims, None)
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.head_dims):
            raise DomainError(f"domain head_dims: expected positive integers, got {list(self.head_dims)}")
        _check_values("dtypes", self.dtypes, tuple(DTYPES))
        _check_values("causal", self.causal, (False, True))
        _check_values("heads", self.heads, HEAD_LAYOUTS)
        _check_values("layouts", self.layouts, LAYOUTS)
        if not isinstance(self.same_length, bool):
            raise DomainError(f"domain same_length: expected true or false, got {self.same_length!r}")
        if self.length_multiple not in LENGTH_MULTIPLES:
            raise DomainError(
                f"domain length_multiple: expected one of {list(LENGTH_MULTIPLES)}, "
                f"got {self.length_multiple!r}"
            )

    def contains(self, case: Case) -> bool:
        return (
            case.head_dim in self.head_dims
            and case.dtype in self.dtypes
            and case.causal in self.causal
            and case.head_layout in self.heads
            and (case.nq == case.nk or not self.same_length)
            and case.nq % self.length_multiple == 0
            and case.nk % self.length_multiple == 0
            and case.layout in self.layouts
        )

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Domain:
        """Inverse of :meth:`to_dict`; missing keys keep the unrestricted default. DomainError if bad."""
        if not isinstance(d, dict):
            raise DomainError(f"a domain must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(d.keys() - names)
        if extra:
            raise DomainError(f"unknown domain field(s) {extra}: expected some of {sorted(names)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        for key in ("head_dims", "dtypes", "causal", "heads", "layouts"):
            if key in values and not isinstance(values[key], tuple):
                raise DomainError(f"domain {key}: expected a list, got {d[key]!r}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Domain:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DomainError(f"domain is not valid JSON: {exc}") from None


def _check_values(name: str, values: tuple, allowed: tuple | None) -> None:
    if not isinstance(values, tuple) or not values:
        raise DomainError(f"domain {name}: expected a non-empty list, got {values!r}")
    if allowed is not None and any(v not in allowed for v in values):
        raise DomainError(f"domain {name}: expected values among {list(allowed)}, got {list(values)}")


@dataclass
class DomainProbe:
    """The inferred domain and the evidence: one row per probe (axis, value, accepted, what it said)."""

    domain: Domain
    rows: list[dict] = field(default_factory=list)
    calls: int = 0
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "domain": self.domain.to_dict(),
            "probes": list(self.rows),
            "calls": self.calls,
            "note": self.note,
        }


def _probe_case(**change) -> Case:
    hq, hkv = _PROBE_HEADS[change.pop("heads", "mha")]
    base = dict(batch=1, hq=hq, hkv=hkv, nq=_BASE_N, nk=_BASE_N, head_dim=64, dtype="float16")
    base.update(causal=False, sm_scale=None, distribution="gaussian", seed=0, layout="hnd")
    base.update(change)
    return Case(**base)


def probe_domain(target, device: str, stated: dict | None = None, check=None) -> DomainProbe:
    """Infer ``target``'s domain from tiny probe cases; axes in ``stated`` (Domain field -> value) are
    taken as given. When the kernel refuses even the most ordinary probe, the domain stays unrestricted
    and ``note`` says so (the search then reports everything unsupported). ``check(target, case,
    device)`` (a :class:`~harness.search.isolation.IsolatedChecker`) runs each probe instead of a
    direct call in this process."""
    stated = dict(stated or {})
    probe = DomainProbe(domain=Domain())
    head_dims = tuple(stated.get("head_dims") or sorted(set(ALL_HEAD_DIMS) | set(target.head_dims)))
    dtypes = tuple(stated.get("dtypes") or target.dtypes)

    def accepts(axis: str, value, case: Case) -> bool:
        from harness.search.properties import _call, _sync

        probe.calls += 1
        if check is not None:
            result = check(target, case, device)
            if result.status == "unsupported":
                said, ok = result.message[:160], False
            elif result.failed_property in ("crashed", "timed_out"):
                said, ok = f"accepted ({result.failed_property} in its worker, judged in the search)", True
            else:
                said, ok = "accepted", True
            probe.rows.append({"axis": axis, "value": value, "accepted": ok, "said": said})
            return ok
        try:
            _call(target, case, *case.make_inputs(device))
            _sync(device)
            said, ok = "accepted", True
        except UNSUPPORTED_EXCEPTIONS as exc:
            said, ok = f"{type(exc).__name__}: {exc}"[:160], False
        except Exception as exc:  # a crash is not a refusal: the search will judge it
            said, ok = f"accepted (raised {type(exc).__name__}, judged in the search)", True
        probe.rows.append({"axis": axis, "value": value, "accepted": ok, "said": said})
        return ok

    # A base the kernel accepts: the first claimed head dim and dtype (mha, Nq = Nk = 128, not causal,
    # contiguous), trying causal too for kernels that only do causal.
    base = None
    for d in head_dims:
        for dt in dtypes:
            for causal in tuple(stated["causal"]) if "causal" in stated else (False, True):
                heads = next(iter(stated.get("heads") or ("mha",)))
                layout = next(iter(stated.get("layouts") or ("hnd",)))
                candidate = {"head_dim": d, "dtype": dt, "causal": causal, "heads": heads, "layout": layout}
                if accepts("base", f"D={d} {dt} causal={causal}", _probe_case(**candidate)):
                    base = candidate
                    break
            if base is not None:
                break
        if base is not None:
            break
    if base is None:
        probe.note = "the kernel refused every base probe; searching without a learned domain"
        return probe

    def axis(name: str, values, make) -> tuple:
        if name in stated:
            return tuple(stated[name])
        return tuple(v for v in values if v == base[_BASE_KEY[name]] or accepts(name, v, make(v)))

    def with_base(**change) -> Case:
        return _probe_case(**{**base, **change})

    found = {
        "head_dims": axis("head_dims", head_dims, lambda d: with_base(head_dim=d)),
        "dtypes": axis("dtypes", tuple(DTYPES), lambda dt: with_base(dtype=dt)),
        "causal": axis("causal", (False, True), lambda c: with_base(causal=c)),
        "heads": axis("heads", HEAD_LAYOUTS, lambda h: with_base(heads=h)),
        "layouts": axis("layouts", LAYOUTS, lambda lay: with_base(layout=lay)),
    }
    if "same_length" in stated:
        found["same_length"] = stated["same_length"]
    else:
        shorter = accepts("nq != nk", "Nq=64 < Nk=128", with_base(nq=64))
        longer = accepts("nq != nk", "Nq=128 > Nk=64", with_base(nk=64))
        found["same_length"] = not (shorter or longer)
    if "length_multiple" in stated:
        found["length_multiple"] = stated["length_multiple"]
    else:
        found["length_multiple"] = _BASE_N
        for m in LENGTH_MULTIPLES[:-1]:
            n = _LENGTH_OF_MULTIPLE[m]
            if accepts("length multiple", f"Nq=Nk={n} (multiple of {m})", with_base(nq=n, nk=n)):
                found["length_multiple"] = m
                break
    empty = [k for k, v in found.items() if isinstance(v, tuple) and not v]
    if empty:
        probe.note = f"no accepted value on axis {', '.join(empty)}; searching without a learned domain"
        return probe
    probe.domain = Domain(**found)
    return probe


# Domain axis -> the base-case key it varies (a value equal to the base's was accepted already).
_BASE_KEY = {
    "head_dims": "head_dim",
    "dtypes": "dtype",
    "causal": "causal",
    "heads": "heads",
    "layouts": "layout",
}
