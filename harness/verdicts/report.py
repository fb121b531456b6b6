"""``lowbit check``'s reports: Markdown (step summary, PR comment), JUnit XML, JSON.

The Markdown leads with the verdict and a one-table summary, then new failures (each with the command
that re-runs it), then regressions with ratios and p-values, then improvements; everything long sits in
folded ``<details>`` blocks and lists are capped, so a comparison of 1,000 cases stays readable (and under
GitHub's 65,536-character comment limit).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter

from harness.verdicts.compare import Comparison, Entry

# The marker that lets the CI script find and update its one PR comment instead of adding another.
COMMENT_MARKER = "<!-- lowbit-check -->"
# Rows shown per section before the rest is only counted (the JSON report has them all).
MAX_ROWS = 50
MAX_CHARS = 60_000

_HEADLINE = {
    "clean": "✅ **clean**: nothing got wrong, less precise or slower",
    "regressed": "❌ **regressed**",
    "not-comparable": "⚠️ **nothing comparable measured**: this is neither a pass nor a regression",
}
PRECISION_NOTE = (
    "Precision needs no statistics: a case fixes the inputs and the kernel is deterministic, so an error "
    "is an exact number; the rule is only the threshold (relative, with an absolute floor)."
)


def _pct(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "∞" if ratio is not None else "-"
    return f"{(ratio - 1) * 100:+.1f}%"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}{unit}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _case(e: Entry) -> str:
    return f"`{e.kernel}` · `{e.case_id}` · {e.shape_class or e.family}"


def _precision_cell(e: Entry) -> str:
    p = e.precision
    if p is None or p.direction == "not-compared":
        return "-"
    return f"{p.metric} {_num(p.base)} → {_num(p.now)} ({_pct(p.ratio)})"


def _latency_cell(e: Entry) -> str:
    lat = e.latency
    if lat is None or lat.direction == "not-compared":
        return "-"
    return (
        f"{_num(lat.base_median_ms, ' ms')} → {_num(lat.now_median_ms, ' ms')} ({_pct(lat.ratio)}, "
        f"p={_p(lat.p_value)}, n={lat.n_base}/{lat.n_now})"
    )


def _capped(rows: list[str], total: int) -> list[str]:
    if total > len(rows):
        rows.append(f"\n…and {total - len(rows)} more (all of them in the JSON report).")
    return rows


def _table(entries: list[Entry], header: str, cells) -> list[str]:
    rows = ["| " + " | ".join(cells(e)) + " |" for e in entries[:MAX_ROWS]]
    return [header, "|" + "---|" * (header.count("|") - 1), *_capped(rows, len(entries))]


def to_markdown(c: Comparison) -> str:
    """The report for a GitHub step summary or PR comment."""
    counts = c.counts
    out = [COMMENT_MARKER, f"## lowbit check: `{c.commit[:12]}`", "", _HEADLINE[c.status]]
    base = c.baseline
    out.append("")
    if base.commit:
        out.append(f"Baseline `{base.commit[:12]}`: {base.reason}.")
    else:
        out.append(f"Baseline: none ({base.reason}).")
    gpu = c.environment.get("gpu") or c.environment.get("cpu") or "unknown device"
    stack = ", ".join(f"{k} {c.environment[k]}" for k in ("torch", "triton", "cuda") if c.environment.get(k))
    out.append(f"Environment: {gpu}" + (f" ({stack})" if stack else "") + ".")
    for problem in c.problems:
        if problem != base.reason:
            out.append(f"- ⚠️ {problem}")
    out += [
        "",
        "| new failures | trades | less precise | slower | fixed | still failing | improved | unchanged "
        "| new cases | missing |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| "
        + " | ".join(
            str(counts[k])
            for k in (
                "new-failure",
                "trade",
                "precision",
                "latency",
                "fixed",
                "still-failing",
                "improvement",
                "unchanged",
                "new-case",
                "missing",
            )
        )
        + " |",
        "",
        f"Rules: latency slower only if Mann–Whitney U p < {c.thresholds.p_value:g} (asv's rule) and the "
        f"median moved > {c.thresholds.latency * 100:g}%; precision worse if the error grew > "
        f"{c.thresholds.precision * 100:g}% and past an absolute floor. {PRECISION_NOTE}",
    ]
    if not c.latency_compared:
        out.append("Latency was not compared (no baseline in the same environment).")

    new = c.of_kind("new-failure")
    if new:
        out += ["", f"### ❌ New failures ({len(new)})", ""]
        rows = []
        for e in new[:MAX_ROWS]:
            rows.append(
                f"- {_case(e)}: **{e.failed_property or e.status_now}** "
                f"({'passed at baseline' if e.status_base else 'new case'}) {_short(e.message)}\n"
                f"  ```\n  {e.repro}\n  ```"
            )
        out += _capped(rows, len(new))
    regressed = c.of_kind("trade", "precision", "latency")
    if regressed:
        out += ["", f"### 📉 Regressions ({len(regressed)})", ""]
        out += _table(
            regressed,
            "| kind | kernel · case | precision | latency |",
            lambda e: [e.kind, _case(e), _precision_cell(e), _latency_cell(e)],
        )
        trades = [e for e in regressed if e.kind == "trade"]
        if trades:
            out.append("")
            out.append(
                f"{len(trades)} trade(s): one of precision and latency got better while the other got worse; "
                "the gate fails on them so a person decides."
            )
    fixed = c.of_kind("fixed")
    improved = c.of_kind("improvement")
    if fixed or improved:
        out += ["", f"### 📈 Improvements ({len(fixed)} fixed, {len(improved)} improved)", ""]
        if fixed:
            out += _capped(
                [
                    f"- fixed: {_case(e)} (failed {e.failed_property or e.status_base} at baseline)"
                    for e in fixed[:MAX_ROWS]
                ],
                len(fixed),
            )
        if improved:
            out += [
                "",
                *_table(
                    improved,
                    "| kernel · case | precision | latency |",
                    lambda e: [_case(e), _precision_cell(e), _latency_cell(e)],
                ),
            ]
    folded = [
        ("Still failing (known failures, not regressions)", c.of_kind("still-failing")),
        ("Missing now (measured at baseline only)", c.of_kind("missing")),
        ("New cases (passing, no baseline)", c.of_kind("new-case")),
    ]
    for title, entries in folded:
        if not entries:
            continue
        out += ["", f"<details><summary>{title}: {len(entries)}</summary>", ""]
        out += _capped(
            [f"- {_case(e)} {e.failed_property or ''}".rstrip() for e in entries[:MAX_ROWS]], len(entries)
        )
        out += ["", "</details>"]
    unchanged = c.of_kind("unchanged")
    if unchanged:
        per_kernel = Counter(e.kernel for e in unchanged)
        out += ["", f"<details><summary>Unchanged: {len(unchanged)}</summary>", ""]
        out += [f"- `{k}`: {n} case(s)" for k, n in sorted(per_kernel.items())]
        out += ["", "</details>"]
    text = "\n".join(out) + "\n"
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 200] + "\n\n…(report truncated; the JSON report has everything)\n"
    return text


def to_json(c: Comparison) -> str:
    """Everything, machine-readable (non-finite numbers as strings)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(c.as_dict()), indent=2, sort_keys=True) + "\n"


def to_junit(c: Comparison) -> str:
    """One test case per kernel x case; regressions are failures, missing cases are skipped; a
    comparison that measured nothing comparable is one error."""
    suite = ET.Element(
        "testsuite",
        name=f"lowbit check {c.commit[:12]}",
        tests=str(len(c.entries) + (1 if c.status == "not-comparable" else 0)),
        failures=str(len(c.regressions)),
        errors="1" if c.status == "not-comparable" else "0",
        skipped=str(len(c.of_kind("missing"))),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("commit", c.commit),
        ("baseline", c.baseline.commit or ""),
        ("baseline_reason", c.baseline.reason),
        ("status", c.status),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    if c.status == "not-comparable":
        case = ET.SubElement(suite, "testcase", classname="lowbit.check", name="comparable")
        ET.SubElement(case, "error", message="nothing comparable measured").text = "\n".join(c.problems)
    for e in c.entries:
        case = ET.SubElement(suite, "testcase", classname=f"lowbit.{e.kernel}", name=e.case_id)
        detail = [f"kind: {e.kind}", f"shape: {e.shape_class}", f"family: {e.family}"]
        if e.precision is not None:
            detail.append(f"precision: {_precision_cell(e)}")
        if e.latency is not None:
            detail.append(
                f"latency: {_latency_cell(e) if e.latency.direction != 'not-compared' else e.latency.reason}"
            )
        if e.repro:
            detail.append(f"repro: {e.repro}")
        if e.message:
            detail.append(e.message)
        if e.regression:
            what = e.failed_property or e.kind
            ET.SubElement(case, "failure", message=f"{e.kind}: {what}", type=e.kind).text = "\n".join(detail)
        elif e.kind == "missing":
            ET.SubElement(case, "skipped", message="measured at the baseline only")
        else:
            ET.SubElement(case, "system-out").text = "\n".join(detail)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


RENDERERS = {"md": to_markdown, "json": to_json, "junit": to_junit}
