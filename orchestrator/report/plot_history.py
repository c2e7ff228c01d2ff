"""The trend plot: each series' per-run figure across runs, one panel per component, change points marked.

Drawn with the report's matplotlib settings (``plots``) as inline SVG. Runs are on the x axis by position
(oldest left; the last one is the run being reported), so runs minutes or weeks apart are spaced alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from orchestrator.report.history import Series
from orchestrator.report.plots import _RC, DEVICE_COLORS, to_svg


def trend_plot(series: Sequence[Series]) -> str | None:
    """None when no series has two runs (nothing to trend)."""
    drawn = [s for s in series if len(s.points) >= 2]
    if not drawn:
        return None
    runs = list(dict.fromkeys(p.run_id for s in drawn for p in sorted(s.points, key=lambda p: p.started_at)))
    position = {r: i for i, r in enumerate(runs)}
    components = list(dict.fromkeys(s.key[1] for s in drawn))
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(len(components), 1, figsize=(10, 2.4 * len(components)), squeeze=False)
        for ax, comp in zip(axes[:, 0], components, strict=True):
            _panel(ax, comp, [s for s in drawn if s.key[1] == comp], position)
        axes[-1, 0].set_xlabel(f"run (oldest left; {len(runs)} runs, the last is this one)")
        fig.tight_layout()
        return to_svg(fig)


def _panel(ax: plt.Axes, component: str, rows: list[Series], position: dict[str, int]) -> None:
    for i, s in enumerate(rows):
        color = DEVICE_COLORS[i % len(DEVICE_COLORS)]
        xs = [position[p.run_id] for p in s.points]
        ax.plot(xs, s.values, color=color, marker="o", markersize=3, linewidth=1.2,
                label=f"{s.key[0]} · {s.key[2]} · {s.key[3]}")
        for cp in s.change_points:
            ax.axvline(xs[cp] - 0.5, color=color, linestyle="--", linewidth=0.9, alpha=0.8)
            ax.plot([xs[cp]], [s.values[cp]], marker="D", markersize=6, color=color, markerfacecolor="none")
    unit = rows[0].unit
    ax.set_title(component, loc="left")
    ax.set_ylabel(f"median ({unit})" if unit == "ms" else unit)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="#424242", linestyle="--", marker="D", markerfacecolor="none",
                          label="change point"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
