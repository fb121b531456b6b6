"""Planning ``lowbit run``: validate the request, then list every kernel's cases before anything runs.

Everything that can be wrong with the request (device, commit, shard, kernel spec, database, time-out)
is checked before the run row is written: a bad request writes nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from harness.run import corpus
from harness.run.config import (
    CPU_REPLAY_MAX_WORK,
    DEFAULT_FUZZ_EXAMPLES,
    RunConfig,
    RunUsageError,
    configured_case_timeout,
)

# Stored counterexamples that killed or hung their worker: each is replayed in a worker of its own, so a
# case that crashes every time cannot take the rest of the kernel's cases down with it.
ISOLATED_PROPERTIES = ("crash", "crashed", "timeout", "timed_out")


@dataclass
class KernelPlan:
    target: Any  # harness.search.targets.KernelTarget
    replay: list[Any]  # Cases
    corpus: list[Any]
    fuzz_examples: int
    fuzz_seed: int
    skipped_replay: int = 0
    isolated: list[Any] = field(default_factory=list)  # replayed cases that crashed or hung before

    @property
    def planned(self) -> int:
        return len(self.isolated) + len(self.replay) + len(self.corpus) + self.fuzz_examples


@dataclass
class RunPlan:
    config: RunConfig
    device: str
    commit: Any  # harness.run.gitinfo.CommitInfo
    shard: tuple[int, int] | None
    seed: int
    kernels: list[KernelPlan]
    store: Any
    environment: dict
    case_timeout_s: float | None = None  # the user's setting; None sizes each case by device and shape
    # Where kernels run, one at a time per slot (--devices); empty means one default slot.
    slots: list[Any] = field(default_factory=list)  # harness.run.devices.Slot


def derive_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def registry_names() -> list[str]:
    """Names of the registered kernels, in registry order; KernelLoadError if the registry is unusable."""
    from harness.search.targets import registry

    return list(registry())


def _stored_case_params(entry: dict) -> dict:
    for key in ("case_params", "params"):
        if isinstance(entry.get(key), dict):
            return entry[key]
    return entry


def prepare(config: RunConfig) -> RunPlan:
    """Validate the request and plan every kernel's cases; raises RunUsageError, writes nothing."""
    from harness.run.devices import resolve_slots
    from harness.run.gitinfo import GitInfoError, resolve_commit
    from harness.search.device import DeviceError, select_device

    if config.suite not in corpus.SUITES:
        raise RunUsageError(f"unknown suite {config.suite!r}: expected one of {', '.join(corpus.SUITES)}")
    try:
        shard = corpus.parse_shard(config.shard) if config.shard is not None else None
    except ValueError as exc:
        raise RunUsageError(str(exc)) from None
    if config.fuzz_examples is not None and config.fuzz_examples < 0:
        raise RunUsageError(f"--fuzz-examples: expected a count >= 0, got {config.fuzz_examples}")
    timeout = configured_case_timeout(config.case_timeout_s)
    try:
        device = select_device(config.device)
    except DeviceError as exc:
        raise RunUsageError(str(exc)) from None
    try:
        slots = resolve_slots(config.devices, device)
    except ValueError as exc:
        raise RunUsageError(str(exc)) from None
    try:
        commit = resolve_commit(config.commit, config.branch, config.cwd, allow_short=config.allow_short)
    except GitInfoError as exc:
        raise RunUsageError(str(exc)) from None

    # Only now may kernels be imported: select_device configured Triton for the chosen device.
    from harness.run.environment import fingerprint
    from harness.search.targets import KernelLoadError, load_kernel

    targets = []
    try:
        for ref in list(config.kernels) or registry_names():
            targets.append(load_kernel(ref))
    except KernelLoadError as exc:
        raise RunUsageError(str(exc)) from None
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RunUsageError(f"kernel name(s) given more than once: {', '.join(duplicates)} (use alias=spec)")

    store = _open_store(config.db)
    seed = config.seed if config.seed is not None else int(commit.commit[:8], 16)
    examples = (
        config.fuzz_examples
        if config.fuzz_examples is not None
        else DEFAULT_FUZZ_EXAMPLES[device][config.suite]
    )
    if shard is not None:
        examples = math.ceil(examples / shard[1])
    plans = [_plan_kernel(target, store, config.suite, device, shard, examples, seed) for target in targets]
    return RunPlan(
        config=config,
        device=device,
        commit=commit,
        shard=shard,
        seed=seed,
        kernels=plans,
        store=store,
        environment=fingerprint(device, slots[0].index),
        case_timeout_s=timeout,
        slots=slots,
    )


def _open_store(db: str | None) -> Any:
    from harness.store import StoreError, open_store, resolve_url

    try:
        return open_store(resolve_url(db))
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None


def _plan_kernel(
    target: Any,
    store: Any,
    suite: str,
    device: str,
    shard: tuple[int, int] | None,
    examples: int,
    seed: int,
) -> KernelPlan:
    from harness.search.cases import Case
    from harness.store import StoreError

    try:
        stored = store.counterexample_records(target.name)
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None
    crashing = {r["case_id"] for r in stored if r["property"] in ISOLATED_PROPERTIES}
    replay, isolated, seen, skipped = [], [], set(), 0
    for entry in stored:
        try:
            case = Case.from_params(_stored_case_params(entry))
        except (ValueError, TypeError, KeyError):
            skipped += 1
            continue
        if case.case_id in seen or not corpus.in_shard(case.case_id, shard):
            continue
        if device == "cpu" and corpus.case_work(case) > CPU_REPLAY_MAX_WORK:
            skipped += 1
            continue
        seen.add(case.case_id)
        (isolated if entry["case_id"] in crashing else replay).append(case)
    regression = [
        case
        for case in corpus.build_corpus(suite, device, target.head_dims, target.dtypes)
        if case.case_id not in seen and corpus.in_shard(case.case_id, shard)
    ]
    shard_label = f"{shard[0]}/{shard[1]}" if shard else "all"
    return KernelPlan(
        target=target,
        replay=replay,
        corpus=regression,
        fuzz_examples=examples,
        fuzz_seed=derive_seed(seed, target.name, shard_label),
        skipped_replay=skipped,
        isolated=isolated,
    )
