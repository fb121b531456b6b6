"""Repository-wide pytest set-up (tests/ and bench/): choose the Triton backend before any kernel module
is imported, and deselect, with the reason shown, what this machine cannot run:

* `gpu` tests where torch sees no GPU, and where pytest-xdist runs several test processes on one GPU (they
  need it to themselves: timings, 2^31-offset cases of tens of GiB; run ``pytest -m gpu`` without ``-n``);
* `interpreter` tests (they run Triton kernels in the CPU interpreter, in this process or in a child) on a
  GPU machine whose Triton/numpy pair breaks the interpreter. Without a GPU the interpreter is the only
  backend, so a broken pair stops the session at once (``select_device`` raises and says which fix).
"""

import os

from harness.search.device import interpreter_problem, select_device

# No GPU here means the CPU interpreter; on the device machine the GPU is used.
DEVICE = select_device(None)
# On the GPU, tests marked `interpreter` still need it (a child process with `--device cpu`).
INTERPRETER_PROBLEM = interpreter_problem() if DEVICE == "cuda" else None

_deselected: dict[str, int] = {}


def _test_processes(config) -> int:
    """How many pytest-xdist processes run the tests (1 without xdist)."""
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT")  # set in xdist's workers
    if count is None:  # the controller (or no xdist): the -n option as given
        given = getattr(config.option, "numprocesses", None)
        count = str(given or 1) if given != "auto" else str(os.cpu_count() or 1)
    return int(count) if count.isdigit() else 1


def _reasons(config) -> dict[str, str]:
    """Why each marker's tests cannot run here, for the markers that cannot."""
    reasons = {}
    if DEVICE != "cuda":
        reasons["gpu"] = "torch sees no CUDA GPU"
    elif _test_processes(config) > 1:
        reasons["gpu"] = (
            f"{_test_processes(config)} pytest-xdist processes share the GPU, and these tests need it to "
            "themselves (timings, 2^31-offset cases of tens of GiB): run `pytest -m gpu` without -n"
        )
    if INTERPRETER_PROBLEM is not None:
        reasons["interpreter"] = f"they run the Triton CPU interpreter, unusable here: {INTERPRETER_PROBLEM}"
    return reasons


def pytest_report_header(config):
    return [f"lowbit: kernels run on {DEVICE}"] + [
        f"lowbit: `{marker}` tests deselected: {reason}" for marker, reason in _reasons(config).items()
    ]


def pytest_collection_modifyitems(config, items):
    """Deselect what this machine cannot run (reported as deselected, never silently passed)."""
    markers = list(_reasons(config))
    if not markers:
        return
    keep, drop = [], []
    for item in items:
        marker = next((m for m in markers if item.get_closest_marker(m)), None)
        if marker is None:
            keep.append(item)
        else:
            drop.append(item)
            _deselected[marker] = _deselected.get(marker, 0) + 1
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter, config):
    reasons = _reasons(config)
    for marker, count in sorted(_deselected.items()):
        terminalreporter.write_line(f"lowbit: {count} `{marker}` test(s) deselected: {reasons[marker]}")
