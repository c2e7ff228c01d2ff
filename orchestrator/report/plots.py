"""The report's figures, drawn with matplotlib (Agg) and returned as inline SVG text.

Each function takes the Report and returns an ``<svg>`` string, or None when there is nothing to draw.
Glyphs are embedded as paths, so the SVG needs no font, file or network; ``svg.hashsalt`` and an empty
date make the output reproducible for the same report.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are drawn headless, never on a display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from orchestrator.quantiles import spread
from orchestrator.report.model import Report
from orchestrator.report.qualify import JobVerdict
from orchestrator.report.regression import Comparison
from orchestrator.report.units import mb, ms, signed

COLORS = {"pass": "#2e7d32", "fail": "#c62828", "warn": "#ef8f00", "n/a": "#9e9e9e",
          "regression": "#c62828", "suspicious": "#ef8f00", "improvement": "#2e7d32", "no change": "#607d8b",
          "insufficient data": "#bdbdbd"}
DEVICE_COLORS = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593", "#ef6c00")
_RC: Any = {"svg.fonttype": "path", "svg.hashsalt": "mlfarm", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False, "axes.titlesize": 10, "axes.titleweight": "bold"}


def to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # layout already tight: one draw, not two
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG is inlined in HTML
    # Inline SVG in HTML needs no namespace declarations (the HTML parser supplies them, xlink:href included)
    # and no RDF metadata: without them the page holds no URL at all.
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    # Scale with the page: keep the viewBox, let CSS decide the width.
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r'<svg\1 class="plot"', text, count=1)


def _row_label(device: str, emulated: bool, *parts: str) -> str:
    return " · ".join((device + (" (emulated)" if emulated else ""), *parts))


# ---- latency -------------------------------------------------------------------------------------------------
def latency_plot(report: Report) -> str | None:
    """Per component, one box per device x variant x compute units (box p25-p75, whiskers p10-p90, budget)."""
    measured = [v for v in report.verdicts if v.latency is not None and v.job_id]
    components = [c for c in dict.fromkeys(v.component for v in measured)]
    if not components:
        return None
    samples = {j.id: j.values("latency_ms") for j in report.run.jobs}
    rows_per = [[v for v in measured if v.component == c] for c in components]
    heights = [max(1.2, 0.34 * len(r) + 0.7) for r in rows_per]
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(len(components), 1, figsize=(10, sum(heights)),
                                 gridspec_kw={"height_ratios": heights}, squeeze=False)
        baseline = {(c.device_key, c.component, c.variant, c.compute_units): c.baseline
                    for c in report.comparisons if c.metric == "latency" and c.baseline is not None}
        for ax, comp, rows in zip(axes[:, 0], components, rows_per, strict=True):
            _latency_panel(ax, comp, rows, samples, baseline)
        fig.tight_layout()
        return to_svg(fig)


def box_stats(values: Sequence[float]) -> dict[str, Any]:
    """A box at p25-p75 with the median at p50 and whiskers at p10 and p90, from the same percentiles as every
    other figure (matplotlib's own boxplot would snap whiskers to the nearest sample inside them)."""
    s = spread(values)
    return {"med": s.p50, "q1": s.p25, "q3": s.p75, "whislo": s.p10, "whishi": s.p90,
            "fliers": [x for x in values if x < s.p10 or x > s.p90]}


def _latency_panel(ax: plt.Axes, component: str, rows: list[JobVerdict], samples: Mapping[str, Sequence[float]],
                   baseline: dict[tuple[str, str, str, str], float]) -> None:
    ys = list(range(len(rows)))[::-1]
    box = ax.bxp([box_stats(samples[v.job_id or ""]) for v in rows], positions=ys, orientation="horizontal",
                 widths=0.55, patch_artist=True, showfliers=True, flierprops={"markersize": 2, "alpha": 0.5},
                 medianprops={"color": "black", "linewidth": 1.4})
    for patch, v in zip(box["boxes"], rows, strict=True):
        patch.set_facecolor(COLORS["fail"] if (g := v.gate("latency")) and g.status == "fail" else "#90caf9")
        patch.set_alpha(0.85 if v.gating else 0.4)
    left, right = _latency_axis(rows)
    budgets = {g.threshold for v in rows if (g := v.gate("latency")) is not None and g.threshold is not None}
    for y, v in zip(ys, rows, strict=True):
        gate = v.gate("latency")
        if gate is not None and gate.threshold is not None and gate.threshold <= right:
            ax.plot([gate.threshold] * 2, [y - 0.38, y + 0.38], color=COLORS["fail"], linewidth=2)
        elif gate is not None and gate.threshold is not None and len(budgets) > 1:
            ax.annotate(f"budget {gate.threshold:,.0f} ms ▸", (right, y), xytext=(-4, 5), ha="right",
                        textcoords="offset points", fontsize=7, color=COLORS["fail"])
        if v.latency is not None:
            top = max(samples[v.job_id or ""])
            ax.annotate(f"p90 {ms(v.latency.p90)}", (min(top, right), y), xytext=(5, -3),
                        textcoords="offset points", fontsize=7, color="#424242")
    marks = [(y, baseline[k]) for y, v in zip(ys, rows, strict=True)
             if (k := (v.device_key, v.component, v.variant, v.compute_units)) in baseline]
    if marks:
        ax.scatter([m for _, m in marks], [y for y, _ in marks], marker="D", s=22, color="#ef8f00", zorder=5,
                   edgecolors="black", linewidths=0.5, label="baseline median", clip_on=True)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, borderaxespad=0.2)
    for y, m in marks:  # a baseline far off this run's scale is written at the edge it lies beyond
        if not left <= m <= right:
            ax.annotate(f"baseline {ms(m)} {'▸' if m > right else '◂'}", (right if m > right else left, y),
                        xytext=(-4 if m > right else 4, 5), textcoords="offset points", fontsize=7,
                        color="#ef8f00", ha="right" if m > right else "left")
    title = component
    if len(budgets) == 1 and (budget := budgets.pop()) > right:
        title += f"  ·  p90 budget {budget:,.0f} ms (off-scale)"
    ax.set_title(title, loc="left")
    ax.set_xlim(left, right)
    ax.set_yticks(ys, [_row_label(v.device_key, v.emulated, v.variant, v.compute_units) for v in rows], fontsize=8)
    ax.set_xlabel("latency per prediction (ms)" + ("" if left == 0 else "; axis does not start at zero"))
    ax.grid(axis="x", alpha=0.3)


def _latency_axis(rows: list[JobVerdict]) -> tuple[float, float]:
    """Zoom on the spread (the point of the plot); show a budget only when it is near the data."""
    stats = [v.latency for v in rows if v.latency is not None]
    low, high = min(s.p10 for s in stats), max(s.p90 for s in stats)
    pad = max(high - low, high * 0.05)
    left = 0.0 if low - pad < high * 0.4 else low - pad
    right = high + pad * 1.2
    budgets = [g.threshold for v in rows if (g := v.gate("latency")) is not None and g.threshold is not None]
    near = [b for b in budgets if b <= right + pad * 2]
    if near:
        right = max(right, max(near) + pad * 0.5)
    return left, right


# ---- memory vs limit -----------------------------------------------------------------------------------------
def memory_plot(report: Report) -> str | None:
    """Measured peak of every gating job as a share of its device's limit, with the headroom line."""
    rows = [v for v in report.gating if v.limit_mb and (v.peak_mb is not None or v.job_status == "jetsam")]
    if not rows:
        return None
    headroom = report.run.gates.memory_headroom
    ys = list(range(len(rows)))[::-1]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(10, 0.34 * len(rows) + 1.3))
        top = 110.0
        for y, v in zip(ys, rows, strict=True):
            top = max(top, _memory_bar(ax, y, v))
        allowed = (1 - headroom) * 100
        ax.axvspan(allowed, 100, color=COLORS["warn"], alpha=0.12, linewidth=0)
        ax.axvline(allowed, color=COLORS["warn"], linestyle="--", linewidth=1.2)
        ax.axvline(100, color=COLORS["fail"], linewidth=1.5)
        ax.set_yticks(ys, [_row_label(v.device_key, v.emulated, v.component) for v in rows], fontsize=8)
        ax.set_xlim(0, top)
        ax.set_xlabel("measured peak footprint, % of the device's memory limit")
        ax.legend(handles=[Line2D([], [], color=COLORS["warn"], linestyle="--", label=f"allowed ({headroom:.0%} "
                                  "headroom kept free)"),
                           Line2D([], [], color=COLORS["fail"], label="limit (jetsam)"),
                           Patch(color=COLORS["pass"], label="fits"), Patch(color=COLORS["fail"], label="fails")],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, borderaxespad=0)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return to_svg(fig)


def _memory_bar(ax: plt.Axes, y: int, v: JobVerdict) -> float:
    """One bar; returns how far right it reaches (in %)."""
    limit = v.limit_mb or 1.0
    gate = v.gate("memory")
    failed = gate is not None and gate.status == "fail"
    peak = v.peak_mb if v.peak_mb is not None else (gate.value if gate and gate.value else limit)
    pct = peak / limit * 100
    hatch = "////" if v.job_status == "jetsam" else None
    ax.barh(y, pct, height=0.6, color=COLORS["fail" if failed else "pass"], alpha=0.85, hatch=hatch,
            edgecolor="white" if hatch else None)
    dagger = "†" if gate is not None and "limit unverified" in gate.flags else ""
    what = "jetsam at " if v.job_status == "jetsam" else ""
    ax.annotate(f"{what}{mb(peak)} of {mb(limit)}{dagger} limit", (pct, y), xytext=(4, -3),
                textcoords="offset points", fontsize=7)
    return min(pct + 25, 200.0)


# ---- predicted vs measured -------------------------------------------------------------------------------------
def prediction_plot(report: Report) -> str | None:
    """The memory model's prediction against the measured peak, per job; the diagonal is a perfect model."""
    points = [(v, v.predicted_mb, v.peak_mb) for v in report.verdicts if v.predicted_mb and v.peak_mb]
    if not points:
        return None
    devices = list(dict.fromkeys(v.device_key for v, _, _ in points))
    markers = dict(zip(dict.fromkeys(v.component for v, _, _ in points), "osD^vP*X", strict=False))
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8, 4.6))
        for v, predicted, peak in points:
            color = DEVICE_COLORS[devices.index(v.device_key) % len(DEVICE_COLORS)]
            ax.scatter(predicted, peak, color=color, marker=markers[v.component], s=40, alpha=0.85,
                       edgecolors="white", linewidths=0.5)
            if v.job_status == "jetsam":
                ax.scatter(predicted, peak, s=140, facecolors="none", edgecolors=COLORS["fail"], linewidths=1.5)
        values = [x for _, predicted, peak in points for x in (predicted, peak)]
        lo, hi = min(values) * 0.8, max(values) * 1.2
        ax.plot([lo, hi], [lo, hi], color="#424242", linewidth=1, label="measured = predicted")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="#9e9e9e", alpha=0.15,
                        label="±10%")
        if hi / lo > 20:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="predicted peak (MB)", ylabel="measured peak (MB)")
        jetsam = any(v.job_status == "jetsam" for v, _, _ in points)
        ax.legend(handles=_prediction_legend(devices, markers, jetsam) + ax.get_legend_handles_labels()[0],
                  fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return to_svg(fig)


def _prediction_legend(devices: list[str], markers: dict[str, str], jetsam: bool) -> list[Any]:
    handles: list[Any] = [Line2D([], [], color=DEVICE_COLORS[i % len(DEVICE_COLORS)], marker="o", linestyle="",
                                 label=d) for i, d in enumerate(devices)]
    handles += [Line2D([], [], color="#616161", marker=m, linestyle="", label=c) for c, m in markers.items()]
    if jetsam:
        handles.append(Line2D([], [], marker="o", markersize=10, markerfacecolor="none", linestyle="",
                              markeredgecolor=COLORS["fail"], label="jetsam (footprint at the kill)"))
    return handles


# ---- regression deltas ---------------------------------------------------------------------------------------
_PANELS = (("latency", "latency change (%)"), ("memory", "memory change (MB)"), ("quality", "PSNR change (dB)"))


def regression_plot(report: Report) -> str | None:
    """Every comparison with a figure: the change, its interval, and the no-change band (the threshold)."""
    groups = [(m, label, [c for c in report.comparisons if c.metric == m and c.change is not None])
              for m, label in _PANELS]
    # A panel where every figure is exactly unchanged (deterministic PSNR, say) shows nothing: leave it out.
    groups = [g for g in groups if any(c.change or c.low or c.high for c in g[2])]
    if not groups:
        return None
    heights = [0.3 * len(g[2]) + 0.8 for g in groups]
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(len(groups), 1, figsize=(10, sum(heights)),
                                 gridspec_kw={"height_ratios": heights}, squeeze=False)
        for ax, (metric, label, rows) in zip(axes[:, 0], groups, strict=True):
            _delta_panel(ax, metric, label, rows, report)
        fig.tight_layout()
        return to_svg(fig)


def _scaled(c: Comparison, value: float | None) -> float:
    if value is None:
        return math.nan
    return (value - 1.0) * 100 if c.metric == "latency" else value


def _delta_label(c: Comparison, point: float) -> str:
    text = f"{point:+.1f}%" if c.metric == "latency" else signed(point, c.unit)
    return text + (" (jetsam)" if c.reason.startswith("killed by jetsam") else "")


def _delta_panel(ax: plt.Axes, metric: str, label: str, rows: list[Comparison], report: Report) -> None:
    ys = list(range(len(rows)))[::-1]
    for y, c in zip(ys, rows, strict=True):
        t = c.threshold * 100 if metric == "latency" else c.threshold
        ax.fill_betweenx([y - 0.4, y + 0.4], -t, t, color="#9e9e9e", alpha=0.18, linewidth=0)
        point, low, high = _scaled(c, c.change), _scaled(c, c.low), _scaled(c, c.high)
        color = COLORS[c.classification]
        ax.plot([low, high], [y, y], color=color, linewidth=2, solid_capstyle="butt")
        ax.plot([point], [y], marker="o", color=color, markersize=5)
        if c.classification in ("regression", "suspicious", "improvement"):
            ax.annotate(_delta_label(c, point), (point, y), xytext=(0, 5), ha="center", textcoords="offset points",
                        fontsize=7, color=color)
    ax.axvline(0, color="#424242", linewidth=0.8)
    emulated = {d.key for d in report.run.devices if d.emulated}
    ax.set_yticks(ys, [_row_label(c.device_key, c.device_key in emulated, c.component, c.variant) for c in rows],
                  fontsize=7)
    ax.set_title(label.split(" change")[0], loc="left")
    ax.set_xlabel(label + "; grey band: no-change threshold; bar: confidence interval")
    ax.grid(axis="x", alpha=0.3)
    kinds = list(dict.fromkeys(c.classification for c in rows))
    ax.legend(handles=[Line2D([], [], color=COLORS[k], marker="o", label=k) for k in kinds], fontsize=7,
              loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(kinds), frameon=False, borderaxespad=0.2)
