"""Search settings: how many examples, how large the shapes, and the Hypothesis settings behind them.

Profiles:

* ``dev`` -- quick local check (100 examples), random, example database on so a failure found once is
  replayed first next time.
* ``ci`` -- derandomized and bounded (200 examples), no database: the same run every time.
* ``nightly`` -- long (2000 examples), random, larger shapes.

When the environment variable ``CI`` is set, every profile is built on top of Hypothesis's own ``ci``
profile (derandomized, no database), so a CI job is reproducible whichever profile it picks. Passing an
explicit seed makes a run reproducible too (random search from that seed).

Shape limits depend on the device: tiny in the CPU interpreter (sequence lengths up to ~160), long
sequences on a GPU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, settings

PROFILES: tuple[str, ...] = ("dev", "ci", "nightly")
DEFAULT_EXAMPLES: dict[str, int] = {"dev": 100, "ci": 200, "nightly": 2000}
# On a GPU, cases whose element offsets pass 2^31 (harness.search.long_cases), checked before the search.
LONG_CASES: dict[str, int] = {"dev": 0, "ci": 2, "nightly": 2}

# Where the example database lives, relative to the current directory.
DATABASE_DIR = Path(".lowbit") / "hypothesis"


@dataclass(frozen=True)
class SizeLimits:
    """Upper bounds of a drawn shape. ``max_work`` bounds batch * hq * nq * nk (the score matrix)."""

    max_batch: int
    max_hq: int
    max_n: int
    max_work: int

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_hq", "max_n", "max_work"):
            if getattr(self, name) < 1:
                raise ValueError(f"SizeLimits.{name} must be >= 1, got {getattr(self, name)}")


_SIZES: dict[tuple[str, str], SizeLimits] = {
    # On CPU the score matrix stays small (max_work) so that a plain torch kernel is checked at well
    # over 20 examples/s on two cores: long sequences come with few heads, many heads with short ones.
    ("cpu", "dev"): SizeLimits(max_batch=2, max_hq=4, max_n=128, max_work=2 * 128 * 128),
    ("cpu", "ci"): SizeLimits(max_batch=2, max_hq=4, max_n=160, max_work=2 * 160 * 160),
    ("cpu", "nightly"): SizeLimits(max_batch=2, max_hq=8, max_n=320, max_work=4 * 320 * 320),
    ("cuda", "dev"): SizeLimits(max_batch=4, max_hq=16, max_n=1024, max_work=2**26),
    ("cuda", "ci"): SizeLimits(max_batch=4, max_hq=16, max_n=2048, max_work=2**27),
    ("cuda", "nightly"): SizeLimits(max_batch=4, max_hq=32, max_n=16384, max_work=2**31),
}

# For kernels run by the Triton interpreter inside a test suite: one interpreted call per example must
# stay well under a second.
TINY = SizeLimits(max_batch=1, max_hq=4, max_n=48, max_work=2 * 48 * 48)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    return profile


def size_limits(profile: str, device: str) -> SizeLimits:
    """Shape limits of ``profile`` on ``device`` ("cpu" or "cuda")."""
    check_profile(profile)
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return _SIZES[(kind, profile)]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def database_path(kernel_name: str, device: str, root: Path | None = None) -> Path:
    """Per-kernel, per-device directory of the example database (kernels never share failures)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", kernel_name).strip("_") or "kernel"
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return (root or Path.cwd() / DATABASE_DIR) / f"{safe}-{kind}"


def hypothesis_settings(
    profile: str,
    *,
    examples: int | None = None,
    database: Path | None = None,
    seeded: bool = False,
) -> settings:
    """Hypothesis settings of a lowbit profile.

    ``database`` is the example-database directory (None: no database). ``seeded`` means the caller
    fixes the random seed, which replaces derandomization.
    """
    check_profile(profile)
    parent = settings.get_profile("ci") if in_ci() else settings.get_profile("default")
    derandomize = (profile == "ci" or in_ci()) and not seeded
    use_db = database is not None and profile != "ci" and not in_ci()
    if use_db:
        from hypothesis.database import DirectoryBasedExampleDatabase

        db = DirectoryBasedExampleDatabase(str(database))
    else:
        db = None
    return settings(
        parent,
        max_examples=examples if examples is not None else DEFAULT_EXAMPLES[profile],
        deadline=None,
        derandomize=derandomize,
        database=db,
        print_blob=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
    )


def register_profiles() -> None:
    """Register ``lowbit-dev``, ``lowbit-ci`` and ``lowbit-nightly`` with Hypothesis (not loaded), so a
    user's own Hypothesis tests can ``settings.load_profile("lowbit-ci")``. Done on import; the fuzzer
    itself builds its settings per search and never changes the loaded profile."""
    for name in PROFILES:
        settings.register_profile(f"lowbit-{name}", hypothesis_settings(name))


register_profiles()
