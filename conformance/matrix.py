"""The semantics matrix: adapter × convention, derived from a run's results.

Each row names a convention and the corpus case that probes it; each cell is
read off that case's result on that adapter: a pass means the adapter has the
canonical convention, a divergence is read through its diagnosis (the variant
that reproduces it names the adapter's convention), an error or unsupported
result says so. ``conformance matrix RESULTS.json -o docs/semantics-matrix.md``
writes the page; nothing in it is typed by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .results import Result, RunRecord


@dataclass(frozen=True)
class Row:
    convention: str
    case: str  # the probing case's id
    canonical: str  # the cell when the adapter passes
    variants: dict[str, str] = field(default_factory=dict)  # diagnosis variant → cell
    read: Callable[[Result], str | None] | None = None  # a cell read off the result itself


def _stat_dtype(result: Result) -> str | None:
    for key, out in result.outputs.items():
        if key.split(".")[-1] in ("moving_mean", "moving_variance", "batch_mean", "batch_variance"):
            return out.get("actual_dtype")
    return None


def _axis_note(result: Result) -> str | None:
    notes = [n for n in result.notes if any(w in n for w in ("axis", "axes", "dim", "permute", "transpose"))]
    return notes[0] if notes else None


EPSILON = {"epsilon-1e-3": "1e-3", "epsilon-1e-5": "1e-5", "pytorch-defaults": "1e-5", "flax-defaults": "1e-5",
           "epsilon-1.001e-5": "1.001e-5", "epsilon-1e-6": "1e-6", "epsilon-finfo-float32": "finfo(float32).eps",
           "computed-in-float32": "as the case (computed in float32)"}
ROWS = (
    Row("default epsilon", "batch_norm/seed-000/inference-by-default", "1e-3", EPSILON),
    Row("default momentum (convention)", "batch_norm/seed-000/two-samples-one-feature",
        "0.99 of the old statistic",
        {"pytorch-defaults": "0.1 of the new statistic (0.9 of the old)", "momentum-0.9": "0.9 of the old statistic",
         "momentum-inverted": "weight of the new statistic", "flax-defaults": "0.99 of the old statistic",
         "momentum-0": "statistics replaced by the batch's (momentum 0)", "momentum-1": "never updated"}),
    Row("variance used to normalize", "batch_norm/hand/batch-statistics-biased", "biased (n)",
        {"unbiased-normalize-variance": "unbiased (n - 1)"}),
    Row("variance in the moving update", "batch_norm/layout/nchw-channels-first-train-train-infer", "biased (n)",
        {"unbiased-moving-variance": "unbiased (n - 1)"}),
    Row("axis meaning", "batch_norm/seed-002/nhwc-axis-minus-1-channels", "kept axes as given", read=_axis_note),
    Row("batch of one in training", "batch_norm/hand/batch-size-one-training", "normalizes to beta (variance 0)"),
    Row("statistics dtype, float16 input", "batch_norm/dtype/float16-training", "float32", read=_stat_dtype),
    Row("variance algorithm at mean 1e4 (float32)", "batch_norm/conditioning/large-mean-float32",
        "two-pass (or as accurate)",
        {"one-pass-variance": "one-pass E[x²] − E[x]² (cancels)",
         "one-pass-variance-float32": "one-pass E[x²] − E[x]² (cancels)"}),
    Row("layer_norm default epsilon", "layer_norm/layout/transformer-last-axis-default-epsilon", "1e-3", EPSILON),
    Row("layer_norm rms_scaling statistic", "layer_norm/hand/rms-scaling-is-root-mean-square", "mean square",
        {"rms-centered-variance": "centred variance"}),
    Row("rms_norm default epsilon", "rms_norm/layout/default-epsilon-last-axis", "1e-6", EPSILON),
    Row("group_norm default epsilon", "group_norm/layout/nhwc-channels-last-default-epsilon", "1e-3", EPSILON),
    Row("group_norm channel split", "group_norm/hand/contiguous-groups", "contiguous",
        {"groups-strided": "strided"}),
    Row("instance_norm running variance", "instance_norm/layout/tracked-two-steps-then-inference", "biased (n)",
        {"unbiased-moving-variance": "unbiased (n - 1)"}),
)


def cell(row: Row, result: Result | None) -> str:
    if result is None or result.status == "skipped":
        return "–"
    if result.status == "unsupported":
        return "unsupported"
    if result.outcome == "error":
        return "raises: " + result.message.split(" (at ")[0][:70]
    if row.read:
        read = row.read(result)
        if read:
            return read
    if result.outcome == "pass":
        return row.canonical
    for match in (result.diagnosis or {}).get("matches", []):
        named = [row.variants[v] for v in match["variants"] if v in row.variants]
        if named:
            return named[0]
        if match["variants"] and not row.variants:
            return match["description"]
    matches = (result.diagnosis or {}).get("matches")
    if matches:  # explained by something this row does not ask about: the probe cannot tell
        return f"not told apart here (it differs by: {matches[0]['description'][:60]})"
    return "diverges (unexplained)"


def _link(record: RunRecord, case: str, base: Path) -> str:
    summary = record.cases.get(case, {})
    if not summary.get("path"):
        return f"`{case}`"
    target = os.path.relpath(Path(summary["path"]).resolve(), base.resolve()) if base else summary["path"]
    return f"[`{case}`]({target}#L{summary.get('line') or 1})"


def render(record: RunRecord, link_base: Path | None = None) -> str:
    """The matrix page; case links are relative to ``link_base`` (the page's folder)."""
    adapters = [a for a, info in record.adapters.items() if info.get("status") != "skipped"]
    by_key = {(r.case, r.adapter): r for r in record.results}
    out = ["# Semantics matrix", "",
           f"Generated by `conformance matrix` from run `{record.run_id}` ({record.finished or record.started}); "
           "do not edit by hand. Each cell is read off the result of the row's probing case on that adapter: "
           "a pass is the canonical convention, a divergence is named by its diagnosis.", "",
           "| convention | probing case | " + " | ".join(f"`{a}`" for a in adapters) + " |",
           "|---|---|" + "---|" * len(adapters)]
    for row in ROWS:
        cells = [cell(row, by_key.get((row.case, a))).replace("|", "\\|") for a in adapters]
        out.append(f"| {row.convention} | {_link(record, row.case, link_base)} | " + " | ".join(cells) + " |")
    versions = ", ".join(f"`{a}` {record.adapters[a].get('framework', '')} {record.adapters[a].get('version', '')}"
                         for a in adapters)
    return "\n".join(out + ["", f"Versions: {versions}.", ""])
