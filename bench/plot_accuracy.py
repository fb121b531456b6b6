"""Draw "error vs Nk per method and family" from the CSV written by bench/accuracy_vs_length.py.

    python bench/plot_accuracy.py [docs/accuracy_vs_length.csv] [-o docs/img/accuracy_vs_length.png]

One panel per value family; in each, the worst rel-L2 over the family's distributions, head dims,
dtypes and seeds at each Nk, one line per method, log-log. Families on which a method makes no accuracy
claim are still drawn (dashed), so a reader sees where each method stops being usable. Needs
matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("gaussian", "small", "saturating", "outliers", "degenerate", "extreme")


def worst_by_length(rows):
    """{family: {method: {nk: worst rel_l2}}} and {family: {method: claimed?}} from CSV rows."""
    worst = defaultdict(lambda: defaultdict(dict))
    claimed = defaultdict(dict)
    for r in rows:
        fam, method, nk = r["family"], r["method"], int(r["nk"])
        err = float(r["rel_l2"])
        if not math.isfinite(err):
            err = float("inf")
        worst[fam][method][nk] = max(err, worst[fam][method].get(nk, 0.0))
        claimed[fam][method] = math.isfinite(float(r["budget_rel_l2"]))
    return worst, claimed


def plot(csv_path: Path, png_path: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path}: expected rows written by bench/accuracy_vs_length.py, found none")
    worst, claimed = worst_by_length(rows)
    methods = sorted({r["method"] for r in rows})
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex=True)
    for ax, fam in zip(axes.flat, FAMILIES, strict=True):
        for i, method in enumerate(methods):
            pts = sorted(worst[fam].get(method, {}).items())
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ys = [min(p[1], 10.0) for p in pts]
            style = "-" if claimed[fam].get(method, True) else "--"
            ax.plot(xs, ys, style, marker="o", label=method, color=f"C{i}")
        ax.axhline(1.5e-2, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(fam)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("Nk (keys)")
        ax.set_ylabel("worst rel-L2 vs FP32")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(
        title or "Worst relative L2 error vs number of keys (dashed: no accuracy claim; dotted: 1.5e-2)"
    )
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    return png_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", default=str(ROOT / "docs" / "accuracy_vs_length.csv"))
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "img" / "accuracy_vs_length.png"))
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    print(plot(Path(args.csv), Path(args.output), args.title))


if __name__ == "__main__":
    main()
