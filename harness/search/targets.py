"""Turn what the user typed after ``--kernel`` into a :class:`KernelTarget` the fuzzer can call.

Accepted forms:

* ``int8`` -- a name in ``kernels.registry.REGISTRY``; the registered spec supplies head dims, dtypes,
  budgets and, where it has one, ``dequantize``.
* ``package.module:function`` -- anything importable (the current directory is on the import path). If
  the object is a ``KernelSpec`` it is used like a registered one; a bare callable gets the documented
  defaults below.
* ``alias=package.module:function`` (or ``alias=int8``) -- the same, shown and stored under ``alias`` so a
  kernel keeps its name across commits even when it moves.

Defaults for a bare callable: head dims :data:`DEFAULT_HEAD_DIMS`, dtypes :data:`DEFAULT_DTYPES` and the
per-family budgets of :data:`DEFAULT_BUDGETS` (sized for a kernel that computes in float32 and rounds
only its output to bfloat16, the coarser of the two dtypes). ``max_rel_l2``/``max_abs`` given on the
command line replace the corresponding limit of every family, for bare callables and registered specs
alike.

Importing ``kernels`` decides between the Triton interpreter and the GPU, so this module imports it only
inside :func:`load_kernel`; call :func:`harness.search.device.select_device` first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.search.cases import DTYPES, dtype_name
from kernels.spec import ErrorBudget, KernelSpec, emulation_budget

# Every head dim models ship with (MQA/GQA decoders, ViTs, diffusion transformers use 80, 96, 160...).
DEFAULT_HEAD_DIMS: tuple[int, ...] = (32, 64, 80, 96, 128, 160, 192, 256)
DEFAULT_DTYPES: tuple[str, ...] = ("float16", "bfloat16")

# (max_rel_l2, max_abs) per family for a bare callable. max_abs follows the largest output magnitude a
# family produces: unit-scale values in most, up to ~100 for outliers, ~6e4 for "extreme" (where one
# bfloat16 ulp is 256).
DEFAULT_BUDGETS: dict[str, tuple[float, float]] = {
    "default": (1e-2, 5e-2),
    "gaussian": (1e-2, 5e-2),
    "small": (1e-2, 5e-2),
    "saturating": (2e-2, 1e-1),
    "outliers": (2e-2, 1.0),
    "degenerate": (1e-2, 5e-2),
    "extreme": (1e-2, 512.0),
}

_ALIAS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class KernelLoadError(ValueError):
    """The ``--kernel`` reference names nothing usable; the message says what and why."""


def _file_of(obj: Any) -> str | None:
    target = inspect.unwrap(obj) if callable(obj) else obj
    for candidate in (target, getattr(target, "func", None), type(target)):
        if candidate is None:
            continue
        try:
            path = inspect.getsourcefile(candidate)
        except TypeError:
            continue
        if path and os.path.isfile(path):
            return path
    return None


def _files_of(obj: Any) -> list[str]:
    """The file defining ``obj`` and the files of its package that this file imports from directly.

    A kernel's launcher module usually pulls quantizers and launch helpers from sibling modules; a
    change in any of them changes the kernel.
    """
    path = _file_of(obj)
    if path is None:
        return []
    files = [path]
    module = sys.modules.get(getattr(inspect.unwrap(obj), "__module__", "") or "")
    if module is None:
        return files
    top = module.__name__.split(".")[0]
    for value in vars(module).values():
        owner = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(owner, str) and owner.split(".")[0] == top and owner in sys.modules:
            dep = getattr(sys.modules[owner], "__file__", None)
            if dep and dep.endswith(".py") and os.path.isfile(dep):
                files.append(dep)
    return files


def source_hash(*objects: Any, extra: str = "") -> str:
    """First 16 hex of SHA-256 over the source files defining ``objects`` (and ``extra``); "" if none."""
    files = sorted({f for obj in objects if obj is not None for f in _files_of(obj)})
    if not files and not extra:
        return ""
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    h.update(extra.encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class KernelTarget:
    """A kernel ready to fuzz: the callable plus what it claims to support and how wrong it may be."""

    name: str
    ref: str
    fn: Callable
    spec: KernelSpec | None
    head_dims: tuple[int, ...]
    dtypes: tuple[str, ...]
    source_hash: str
    dequantize: Callable | None = None
    max_rel_l2: float | None = None
    max_abs: float | None = None
    # The spec's float64 emulation of its own algorithm (None for a bare callable: nothing to emulate).
    emulate: Callable | None = None
    # The spec's description of how it runs a case (e.g. mixed's plan), recorded with the metrics.
    inspect: Callable | None = None

    def budget_for(self, family: str, dtype: str | None = None, n_k: int | None = None) -> ErrorBudget:
        """The spec's budget for ``family`` (and ``dtype``, and ``n_k`` where the spec has length-bucketed
        budgets) or the default, with command-line overrides applied."""
        if self.spec is not None:
            torch_dtype = None if dtype is None else DTYPES[dtype_name(dtype)]
            base = self.spec.budget_for(family, torch_dtype, n_k)
        else:
            base = ErrorBudget(*DEFAULT_BUDGETS.get(family, DEFAULT_BUDGETS["default"]))
        return ErrorBudget(
            max_rel_l2=base.max_rel_l2 if self.max_rel_l2 is None else self.max_rel_l2,
            max_abs=base.max_abs if self.max_abs is None else self.max_abs,
            # A stated whole-tensor limit scales the row limit with it.
            max_row_rel_l2=base.max_row_rel_l2 if self.max_rel_l2 is None else None,
        )

    def emulation_budget_for(self, dtype: str, family: str | None = None) -> ErrorBudget:
        """Budget against :attr:`emulate` at ``dtype`` on ``family`` (the spec's, else the default)."""
        torch_dtype = DTYPES[dtype_name(dtype)]
        return emulation_budget(torch_dtype, family, self.spec.emulation_budgets if self.spec else None)

    def override_args(self) -> list[str]:
        """Command-line words that reproduce this target's budget overrides."""
        words = []
        if self.max_rel_l2 is not None:
            words += ["--max-rel-l2", repr(self.max_rel_l2)]
        if self.max_abs is not None:
            words += ["--max-abs", repr(self.max_abs)]
        return words


def _check_limit(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and value >= 0 and value == value):
        raise KernelLoadError(f"{name} must be a non-negative number, got {value!r}")


def target_from_spec(
    spec: KernelSpec, *, name: str | None = None, ref: str | None = None, **overrides: float | None
) -> KernelTarget:
    """A target for a :class:`kernels.registry.KernelSpec` (registered or user-built)."""
    for key, value in overrides.items():
        _check_limit(key, value)
    return KernelTarget(
        name=name or spec.name,
        ref=ref or spec.name,
        fn=spec.fn,
        spec=spec,
        head_dims=tuple(spec.head_dims),
        dtypes=tuple(dtype_name(d) for d in spec.dtypes),
        source_hash=source_hash(spec.fn, spec.dequantize, spec.emulate, extra=spec.source or ""),
        dequantize=spec.dequantize,
        emulate=spec.emulate,
        inspect=spec.inspect,
        **overrides,
    )


def target_from_callable(
    fn: Callable,
    *,
    name: str | None = None,
    ref: str | None = None,
    head_dims: tuple[int, ...] = DEFAULT_HEAD_DIMS,
    dtypes: tuple[str, ...] = DEFAULT_DTYPES,
    max_rel_l2: float | None = None,
    max_abs: float | None = None,
) -> KernelTarget:
    """A target for a bare callable ``fn(q, k, v, *, causal=False, sm_scale=None)``, with defaults."""
    if not callable(fn):
        raise KernelLoadError(f"{name or ref or fn!r} is not callable")
    _check_limit("max_rel_l2", max_rel_l2)
    _check_limit("max_abs", max_abs)
    if not head_dims or any(not isinstance(d, int) or d < 1 for d in head_dims):
        raise KernelLoadError(f"head_dims must be positive integers, got {head_dims!r}")
    dts = tuple(dtype_name(d) for d in dtypes)
    if not dts:
        raise KernelLoadError(f"dtypes must name at least one of {', '.join(DTYPES)}")
    importable = _importable_ref(fn)
    if ref is None and importable is not None:
        # A repro command must name something `lowbit fuzz --kernel` can load again.
        ref = f"{name}={importable}" if name and _ALIAS.match(name) else importable
    label = name or ref or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
    return KernelTarget(
        name=label,
        ref=ref or label,
        fn=fn,
        spec=None,
        head_dims=tuple(head_dims),
        dtypes=dts,
        source_hash=source_hash(fn),
        max_rel_l2=max_rel_l2,
        max_abs=max_abs,
    )


def _importable_ref(fn: Callable) -> str | None:
    """``module:qualname`` of a module-level function or class, if importing it gives ``fn`` back."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return f"{module}:{qualname}" if obj is fn else None


def registry() -> Mapping[str, KernelSpec]:
    """``kernels.registry.REGISTRY`` (imports ``kernels``: select the device first)."""
    try:
        mod = importlib.import_module("kernels.registry")
    except ImportError as exc:
        raise KernelLoadError(f"cannot import the kernel registry (kernels.registry): {exc}") from exc
    reg = getattr(mod, "REGISTRY", None)
    if reg is None:
        reg = getattr(importlib.import_module("kernels"), "REGISTRY", None)
    if reg is None:
        raise KernelLoadError("kernels.registry defines no REGISTRY yet")
    return reg


def _import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise KernelLoadError(f"{path!r} is not of the form module:function")
    # Like `python -m`, let a user point at a module of the project they are in.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is an unusable kernel
        raise KernelLoadError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise KernelLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def load_kernel(ref: str, *, max_rel_l2: float | None = None, max_abs: float | None = None) -> KernelTarget:
    """Resolve ``ref`` (registry name, ``module:function`` or ``alias=...``); KernelLoadError if unusable."""
    if not isinstance(ref, str) or not ref.strip():
        raise KernelLoadError("empty kernel reference: give a registry name, module:function or alias=...")
    ref = ref.strip()
    alias, sep, body = ref.partition("=")
    if not sep:
        alias, body = "", ref
    elif not _ALIAS.match(alias):
        raise KernelLoadError(f"bad alias {alias!r} in {ref!r}: use letters, digits, '_', '-' or '.'")
    elif not body:
        raise KernelLoadError(f"nothing after '=' in {ref!r}")
    overrides = {"max_rel_l2": max_rel_l2, "max_abs": max_abs}
    if ":" in body:
        obj = _import_object(body)
        name = alias or body
        if isinstance(obj, KernelSpec):
            return target_from_spec(obj, name=name, ref=ref, **overrides)
        if not callable(obj):
            raise KernelLoadError(f"{body!r} is a {type(obj).__name__}, not a callable or KernelSpec")
        return target_from_callable(obj, name=name, ref=ref, **overrides)
    reg = registry()
    if body not in reg:
        known = ", ".join(sorted(reg)) or "none"
        raise KernelLoadError(
            f"unknown kernel {body!r}: registered kernels are {known}; or give module:function"
        )
    return target_from_spec(reg[body], name=alias or body, ref=ref, **overrides)


def with_overrides(target: KernelTarget, **overrides: float | None) -> KernelTarget:
    """``target`` with budget overrides replaced (None keeps the current one)."""
    for key, value in overrides.items():
        _check_limit(key, value)
    return dataclasses.replace(target, **{k: v for k, v in overrides.items() if v is not None})
