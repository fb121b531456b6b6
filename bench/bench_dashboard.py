"""First paint of every dashboard page over a history of about 1,000,000 result rows, in headless Chromium.

    python bench/bench_dashboard.py              # builds .lowbit/bench-dashboard.db once, then measures
    python bench/bench_dashboard.py --db PATH --json out.json

The history is written through the store's public API (``tests/dashboard/history.py``: 4 kernels, 600
corpus cases + 2 fuzzed per kernel per run, 400 commits on main and an H200 run every 8 commits, with
planted regressions). It is built once and reused.

Measured per page, from ``page.goto`` until the title is drawn, the script run has finished and every
chart has rendered (:func:`tests.dashboard.browser.first_paint`):

- cold: a freshly started server (``lowbit dashboard``'s command: modules preloaded, every cache empty)
  and a fresh Chromium profile, each page visited once;
- warm: the same server, each page visited again, median of ``--repeat`` visits;
- script cold / warm: the server side alone, each page's script under Streamlit's AppTest (no browser),
  first run with empty caches and median rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.store import open_store  # noqa: E402
from tests.dashboard.browser import PAGES, chromium, dashboard_server, first_paint, page_address  # noqa: E402
from tests.dashboard.history import build_history  # noqa: E402

COLD_LIMIT_S = 5.0
WARM_LIMIT_S = 2.0


def build(path: Path, commits: int, variants: int) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    start = time.perf_counter()
    with open_store(url) as store:
        build_history(store, commits=commits, variants=variants, gpu_every=8)
        rows = store.count("results")
        runs = store.count("runs")
    return {"rows": rows, "runs": runs, "build_s": round(time.perf_counter() - start, 1)}


def script_times(url: str, repeat: int) -> dict:
    """Seconds each page's script takes on the server (Streamlit's AppTest, no browser): cold = first
    run with empty caches (modules already imported, as the server preloads them), warm = median rerun."""
    import os

    os.environ["LOWBIT_DASHBOARD_DB"] = url
    from streamlit.testing.v1 import AppTest

    import dashboard.serve

    dashboard.serve.preload()
    app = str(ROOT / "dashboard" / "app.py")
    out: dict = {"script_cold_s": {}, "script_warm_s": {}}
    at = AppTest.from_file(app, default_timeout=300)
    for name in PAGES:
        if name != "overview":
            at.switch_page(f"page_scripts/{name}.py")
        start = time.perf_counter()
        at.run()
        out["script_cold_s"][name] = round(time.perf_counter() - start, 2)
        assert not at.exception, [e.value for e in at.exception]
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - start)
        out["script_warm_s"][name] = round(statistics.median(runs), 2)
    return out


def measure(url: str, repeat: int) -> dict:
    out: dict = {"cold_s": {}, "warm_s": {}}
    with dashboard_server(url) as base, chromium() as context:
        tab = context.new_page()
        for name in PAGES:
            out["cold_s"][name] = round(first_paint(tab, page_address(base, name), timeout_s=120), 2)
        for name in PAGES:
            runs = [first_paint(tab, page_address(base, name), timeout_s=120) for _ in range(repeat)]
            out["warm_s"][name] = round(statistics.median(runs), 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, default=ROOT / ".lowbit" / "bench-dashboard.db")
    parser.add_argument("--commits", type=int, default=400)
    parser.add_argument("--variants", type=int, default=10, help="corpus cases per run = 60 x variants")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the measurements here too")
    args = parser.parse_args()

    report: dict = {"python": platform.python_version(), "machine": platform.machine()}
    if not args.db.exists():
        print(f"building {args.db} (once) ...", flush=True)
        report["built"] = build(args.db, args.commits, args.variants)
    with open_store(f"sqlite:///{args.db}") as store:
        report["rows"], report["runs"] = store.count("results"), store.count("runs")
    print(f"{report['rows']} result rows in {report['runs']} runs", flush=True)
    report["load_average_before"] = [round(x, 1) for x in os.getloadavg()]
    report.update(measure(f"sqlite:///{args.db}", args.repeat))
    report.update(script_times(f"sqlite:///{args.db}", args.repeat))
    report["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    print(
        f"load average {report['load_average_before']} -> {report['load_average_after']}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'page':10} {'cold (s)':>9} {'warm (s)':>9} {'script cold':>12} {'script warm':>12}")
    for name in PAGES:
        print(
            f"{name:10} {report['cold_s'][name]:9.2f} {report['warm_s'][name]:9.2f} "
            f"{report['script_cold_s'][name]:12.2f} {report['script_warm_s'][name]:12.2f}"
        )
    ok = all(v < COLD_LIMIT_S for v in report["cold_s"].values()) and all(
        v < WARM_LIMIT_S for v in report["warm_s"].values()
    )
    print(f"targets (cold < {COLD_LIMIT_S} s, warm < {WARM_LIMIT_S} s): {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
