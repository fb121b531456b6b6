"""The search: Hypothesis draws cases, :func:`~harness.search.properties.check_case` judges them.

Hypothesis draws parameters and a seed (never tensors); ``target()`` on the ratio error/budget makes the
search climb towards the worst inputs; the first failure is shrunk to a minimal case, which the report
carries with its repro command.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target

from harness.search.cases import Case
from harness.search.distributions import DISTRIBUTIONS
from harness.search.domain import Domain, DomainProbe, probe_domain
from harness.search.long_cases import long_cases
from harness.search.profiles import (
    DEFAULT_EXAMPLES,
    LONG_CASES,
    SizeLimits,
    check_profile,
    database_path,
    hypothesis_settings,
    size_limits,
)
from harness.search.properties import CaseResult, check_case
from harness.search.strategies import cases
from harness.search.targets import KernelTarget

# target() needs finite observations; a non-finite error ratio is reported as this.
_TARGET_CAP = 1e6


class PropertyFailed(AssertionError):
    """Raised inside the Hypothesis test to mark an example as failing; carries the CaseResult."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(f"{result.failed_property}: {result.message}")
        self.result = result


@dataclass
class FuzzReport:
    kernel: str
    examples: int
    failures: list[CaseResult]
    unsupported: int
    coverage: dict[str, Counter]
    elapsed_s: float
    device: str = "cpu"
    profile: str = "dev"
    seed: int | None = None
    passed: int = 0
    shrink_steps: int = 0
    worst: CaseResult | None = None
    limits: SizeLimits | None = None
    notes: list[str] = field(default_factory=list)
    # The learned (or stated) domain and its probes, for a bare callable; None for registered specs.
    domain: DomainProbe | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.elapsed_s if self.elapsed_s > 0 else math.inf

    def to_dict(self) -> dict:
        return {
            "kernel": self.kernel,
            "ok": self.ok,
            "device": self.device,
            "profile": self.profile,
            "seed": self.seed,
            "examples": self.examples,
            "passed": self.passed,
            "unsupported": self.unsupported,
            "shrink_steps": self.shrink_steps,
            "elapsed_s": self.elapsed_s,
            "examples_per_s": self.examples_per_s if self.elapsed_s > 0 else None,
            "failures": [f.to_dict() for f in self.failures],
            "worst": self.worst.to_dict() if self.worst is not None else None,
            "coverage": {k: dict(sorted(v.items())) for k, v in self.coverage.items()},
            "limits": vars(self.limits) if self.limits is not None else None,
            "notes": list(self.notes),
            "domain": self.domain.to_dict() if self.domain is not None else None,
        }


# Out of GPU memory says nothing about a kernel while other processes share the GPU (fuzzers of several
# methods, a training job): such a case is retried after a pause, OOM_RETRIES times, before it counts.
OOM_RETRIES = 3
OOM_PAUSE_S = 15.0
_OOM_MARKS = ("out of memory", "outofmemoryerror", "cublas_status_alloc_failed")


def _out_of_memory(result: CaseResult) -> bool:
    """Whether ``result`` failed because the kernel or its checks ran out of GPU memory."""
    return result.status == "fail" and any(mark in result.message.lower() for mark in _OOM_MARKS)


def _find_failure(exc: BaseException) -> PropertyFailed | None:
    if isinstance(exc, PropertyFailed):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _find_failure(inner)
        if found is not None:
            return found
    for inner in (exc.__cause__, exc.__context__):
        if inner is not None and inner is not exc:
            found = _find_failure(inner)
            if found is not None:
                return found
    return None


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (None: leave as is), restoring the count afterwards.

    The tensors of a CPU example are small; spreading each op over threads costs more than it saves,
    and on a loaded machine spinning OpenMP workers slow a run down by an order of magnitude.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _split(examples: int, parts: int) -> list[int]:
    base, extra = divmod(examples, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# Beside the per-family databases: the families whose last search failed, so they are searched first.
_FAILING_FILE = "failing_families.json"


def _failing_families(db_root: Path) -> list[str]:
    try:
        data = json.loads((db_root / _FAILING_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [f for f in data if isinstance(f, str)] if isinstance(data, list) else []


def _set_failing(db_root: Path, family: str, failing: bool) -> None:
    current = _failing_families(db_root)
    updated = sorted(set(current) | {family}) if failing else [f for f in current if f != family]
    if updated != current:
        db_root.mkdir(parents=True, exist_ok=True)
        (db_root / _FAILING_FILE).write_text(json.dumps(updated))


def fuzz(
    target: KernelTarget,
    *,
    examples: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    profile: str = "dev",
    on_result: Callable[[CaseResult], None] | None = None,
    database: bool = True,
    sizes: SizeLimits | None = None,
    keep_going: bool = False,
    before_case: Callable[[Case], None] | None = None,
    check: Callable[[KernelTarget, Case, str], CaseResult] | None = None,
    domain: dict | Domain | None = None,
    long_cases: bool = True,
) -> FuzzReport:
    """Search for a case where ``target`` breaks a property; return what was tried and found.

    The example budget is split evenly over the distribution families, one Hypothesis search per
    family (so every family is covered however the search climbs); families with a failure saved in
    the example database go first, so a failure found once is replayed first next time. The search
    stops at the first (shrunk) failure unless ``keep_going``, which searches every family and reports
    one shrunk failure per failing family.

    ``examples`` defaults to the profile's count; ``seed`` fixes the random search and turns the database
    off (otherwise the profile decides: ``ci`` derandomized, the others random); ``sizes`` overrides the
    profile's shape limits (limits other than the profile's own also leave out its 2^31-offset GPU cases,
    with a note). ``long_cases=False`` leaves those cases out even where the profile has them: they are
    the same whatever the seed, so a campaign over several seeds needs them once.
    ``on_result`` sees every checked example, shrinking steps included (``result.phase == "shrink"``).
    Hooks around each example: ``before_case(case)`` runs before it is checked (the runner's worker
    announces the case there, so a crash is attributed to it); ``check`` replaces
    :func:`~harness.search.properties.check_case` (an isolated checker runs the kernel in a worker
    process).

    A bare callable's domain is learned first (:func:`harness.search.domain.probe_domain`): nine examples
    in ten are drawn inside it. ``domain`` states some axes instead (a dict of ``Domain`` fields) or all
    of them (a ``Domain``). Registered specs declare their domain and are not probed.
    """
    check_profile(profile)
    if examples is not None and examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    full = size_limits(profile, device)
    limits = sizes or full
    total = examples if examples is not None else DEFAULT_EXAMPLES[profile]
    # A seeded run is a reproducible run: it neither replays nor records database examples.
    db_root = database_path(target.name, device) if database and seed is None else None

    families = list(dict.fromkeys(family for family, _ in DISTRIBUTIONS.values()))
    plan = [(f, n) for f, n in zip(families, _split(total, len(families)), strict=True) if n > 0]
    if db_root is not None:
        failing_before = _failing_families(db_root)
        plan.sort(key=lambda item: item[0] not in failing_before)

    probe = _learn_domain(target, device, domain, check)
    learned = probe.domain if probe is not None and not probe.note else None
    coverage: dict[str, Counter] = {
        "family": Counter(),
        "shape_class": Counter(),
        "distribution": Counter(),
        "layout": Counter(),
    }
    if learned is not None:
        coverage["domain"] = Counter()
    state = {"phase": "explore", "explored": 0, "passed": 0, "unsupported": 0, "shrinks": 0, "oom_retries": 0}
    failures_seen: list[CaseResult] = []
    worst: list[CaseResult] = []
    failures: list[CaseResult] = []
    notes: list[str] = []

    judge = check or check_case

    def run_one(case: Case) -> None:
        check_one(case, True)

    def check_one(case: Case, searching: bool) -> None:
        if before_case is not None:
            before_case(case)
        result = judge(target, case, device)
        retries = 0
        while _out_of_memory(result) and torch.device(device).type == "cuda" and retries < OOM_RETRIES:
            retries += 1
            state["oom_retries"] += 1
            torch.cuda.empty_cache()
            time.sleep(OOM_PAUSE_S * retries)
            result = judge(target, case, device)
        result.phase = state["phase"]
        if result.phase == "explore":
            state["explored"] += 1
            coverage["family"][case.family] += 1
            coverage["shape_class"][case.shape_class] += 1
            coverage["distribution"][case.distribution] += 1
            coverage["layout"][case.layout] += 1
            if learned is not None:
                coverage["domain"]["inside" if learned.contains(case) else "outside"] += 1
            if result.status == "pass":
                state["passed"] += 1
                if not worst or result.error_ratio > worst[0].error_ratio:
                    worst[:] = [result]
            elif result.status == "unsupported":
                state["unsupported"] += 1
        else:
            state["shrinks"] += 1
        if on_result is not None:
            on_result(result)
        if result.status == "pass" and searching:
            hypothesis_target(min(result.error_ratio, _TARGET_CAP), label="error/budget")
        if result.status == "fail":
            failures_seen.append(result)
            state["phase"] = "shrink"
            raise PropertyFailed(result)

    def _search(plan: list[tuple[str, int]]) -> None:
        for family, n in plan:
            names = tuple(name for name, (fam, _) in DISTRIBUTIONS.items() if fam == family)
            strategy = cases(
                target.head_dims,
                target.dtypes,
                limits,
                probe_unclaimed=target.spec is not None,
                distributions=names,
                domain=learned,
            )
            db_dir = db_root / family if db_root is not None else None
            conf = hypothesis_settings(profile, examples=n, database=db_dir, seeded=seed is not None)
            test = conf(given(strategy)(run_one))
            if seed is not None:
                test = hypothesis_seed(seed)(test)
            if db_dir is not None:
                db_dir.mkdir(parents=True, exist_ok=True)
            state["phase"] = "explore"
            seen_before = len(failures_seen)
            try:
                test()
                if db_root is not None and conf.database is not None:
                    _set_failing(db_root, family, False)
            except Exception as exc:
                if db_root is not None and conf.database is not None:
                    _set_failing(db_root, family, True)
                found = _find_failure(exc)
                if found is not None:
                    failures.append(found.result)
                elif len(failures_seen) > seen_before:
                    # Hypothesis could not replay the failure (a flaky kernel): report the last one seen.
                    failures.append(failures_seen[-1])
                    notes.append(f"{family}: failure did not reproduce on replay ({type(exc).__name__})")
                else:
                    raise
                if not keep_going:
                    break

    start = time.perf_counter()
    with cpu_threads(1 if torch.device(device).type == "cpu" else None):
        if long_cases:
            failures += _long_cases(
                target, device, profile, lambda case: check_one(case, False), notes, narrowed=limits != full
            )
        elif torch.device(device).type == "cuda" and LONG_CASES[profile]:
            notes.append("2^31-offset cases left out on request (--no-long-cases)")
        if not failures or keep_going:
            _search(plan)
    elapsed = time.perf_counter() - start
    if state["oom_retries"]:
        notes.append(
            f"{state['oom_retries']} retry(ies) of cases that ran out of GPU memory (is the GPU shared?)"
        )
    return FuzzReport(
        kernel=target.name,
        examples=state["explored"],
        failures=failures,
        unsupported=state["unsupported"],
        coverage=coverage,
        elapsed_s=elapsed,
        device=device,
        profile=profile,
        seed=seed,
        passed=state["passed"],
        shrink_steps=state["shrinks"],
        worst=worst[0] if worst else None,
        limits=limits,
        notes=notes + ([f"domain: {probe.note}"] if probe is not None and probe.note else []),
        domain=probe,
    )


def _long_cases(
    target: KernelTarget,
    device: str,
    profile: str,
    check: Callable[[Case], None],
    notes: list[str],
    *,
    narrowed: bool = False,
) -> list[CaseResult]:
    """On a GPU, the profile's cases whose offsets pass 2^31 (memory permitting); their failures, unshrunk.

    ``narrowed``: the caller capped the profile's shapes (``--max-n``, tiny sizes); cases thousands of
    tokens long would defy that cap, so none runs and a note says so.
    """
    if torch.device(device).type != "cuda" or not LONG_CASES[profile]:
        return []
    if narrowed:
        notes.append("2^31-offset cases skipped: the search's shape limits are narrower than the profile's")
        return []
    free_bytes = torch.cuda.mem_get_info()[0]
    found = long_cases(target.head_dims, target.dtypes, free_bytes, LONG_CASES[profile])
    if not found:
        notes.append(f"no 2^31-offset case fits in {free_bytes / 2**30:.0f} GiB of free GPU memory")
    failures = []
    for case in found:
        try:
            check(case)
        except PropertyFailed as exc:
            if _kernel_out_of_memory(exc.result):
                # The case was sized to fit the harness's own tensors in the memory free when it was
                # chosen; a kernel needing workspace beyond that (or sharing the GPU) cannot be judged here.
                notes.append(
                    f"2^31-offset case not judged: the kernel ran out of GPU memory "
                    f"({free_bytes / 2**30:.0f} GiB were free when it was chosen): {case}"
                )
                continue
            failures.append(exc.result)
            notes.append(f"2^31-offset case failed (not shrunk: it exists to be large): {case}")
        except torch.OutOfMemoryError:
            # The checks catch what the kernel raises, so this ran out under the harness (inputs, oracle):
            # another process took GPU memory after it was measured free. The case says nothing about the
            # kernel either way; give the memory back and go on.
            notes.append(
                f"2^31-offset case not judged: the GPU ran out of memory under the checks "
                f"({free_bytes / 2**30:.0f} GiB were free when it was chosen; another process may hold "
                f"memory): {case}"
            )
        finally:
            torch.cuda.empty_cache()
    return failures


def _kernel_out_of_memory(result: CaseResult) -> bool:
    """Whether ``result`` failed only because the kernel raised CUDA out-of-memory (first or second call)."""
    return result.failed_property in ("supported_or_raises", "deterministic") and (
        "raised OutOfMemoryError" in result.message
    )


def _learn_domain(
    target: KernelTarget,
    device: str,
    domain: dict | Domain | None,
    check: Callable[[KernelTarget, Case, str], CaseResult] | None = None,
) -> DomainProbe | None:
    """The domain to search: stated in full, or probed on the axes not stated (bare callables only);
    probes go through ``check`` when given (an isolated checker: a crash on a probe costs a worker)."""
    if isinstance(domain, Domain):
        return DomainProbe(domain=domain, note="")
    if target.spec is not None and not domain:
        return None
    with cpu_threads(1 if torch.device(device).type == "cpu" else None):
        return probe_domain(target, device, stated=domain, check=check)


def replay(
    target: KernelTarget,
    case: Case,
    device: str,
    check: Callable[[KernelTarget, Case, str], CaseResult] | None = None,
) -> CaseResult:
    """Check exactly one case (what a repro command runs); ``check`` as in :func:`fuzz`."""
    with cpu_threads(1 if torch.device(device).type == "cpu" else None):
        return (check or check_case)(target, case, device)
