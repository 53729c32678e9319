"""Small line charts as inline SVG: linear and percentile (log) axes, ticks, grid, legend.

The HTML report must open offline, from one file, so we draw in Python instead of shipping a
plotting script. Two kinds of chart cover what the report needs:

* :func:`percentile_chart`: HdrHistogram's classic percentile plot, latency against percentile
  on a log scale of ``1 / (1 - p)``, ticks at 0%, 90%, 99%, 99.9%, ...;
* :func:`time_chart`: values over seconds of the run (throughput, latency percentiles).

Every series is one ``<path class="series">`` with its point count in ``data-points``, so tests
(and curious readers of the DOM) can check that data was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Line", "nice_ticks", "percentile_chart", "time_chart"]

_WIDTH, _HEIGHT = 640, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 32, 34, 46
# Colour-blind-safe (Okabe-Ito) colours, in the order series get them.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


@dataclass(frozen=True, slots=True)
class Line:
    """One series: ``(x, y)`` points, a legend label, solid or dashed."""

    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) covering
    ``[low, high]``; the last one is at or above ``high``."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    while not ticks or ticks[-1] < high - step * 1e-9:
        ticks.append(round(start + len(ticks) * step, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"


def _svg(
    title: str,
    lines: Sequence[Line],
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[float],
    x_label: str,
    y_label: str,
    x_of: Callable[[float], float],
) -> str:
    """Draw a chart; ``x_of`` maps data x to axis units (the ticks are in axis units)."""
    x_low, x_high = x_ticks[0][0], x_ticks[-1][0]
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x_low) / ((x_high - x_low) or 1.0) * plot_w

    def py(y: float) -> float:
        return _TOP + plot_h - (y - y_low) / ((y_high - y_low) or 1.0) * plot_h

    out = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" '
        f'height="{_HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="{_LEFT}" y="20">{escape(title)}</text>',
        '<g class="grid">',
    ]
    for x, text in x_ticks:
        out.append(
            f'<line x1="{px(x):.1f}" y1="{_TOP}" x2="{px(x):.1f}" y2="{_TOP + plot_h}"/>'
            f'<text class="tick" x="{px(x):.1f}" y="{_TOP + plot_h + 16}" '
            f'text-anchor="middle">{escape(text)}</text>'
        )
    out.extend(
        f'<line x1="{_LEFT}" y1="{py(y):.1f}" x2="{_LEFT + plot_w}" y2="{py(y):.1f}"/>'
        f'<text class="tick" x="{_LEFT - 6}" y="{py(y) + 4:.1f}" '
        f'text-anchor="end">{_label(y)}</text>'
        for y in y_ticks
    )
    out.append("</g>")
    out.append(
        f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}"/>'
        f'<text class="axis-label" x="{_LEFT + plot_w / 2:.1f}" y="{_HEIGHT - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" x="14" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    for index, line in enumerate(lines):
        colour = _COLOURS[index % len(_COLOURS)]
        points = [(px(x_of(x)), py(y)) for x, y in line.points]
        if not points:
            continue
        path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        out.append(
            f'<path class="series" data-label="{escape(line.label)}" '
            f'data-points="{len(points)}" d="{path}" stroke="{colour}"{dash}/>'
        )
        legend_y = _TOP + 14 + 16 * index
        out.append(
            f'<g class="legend"><line x1="{_LEFT + 10}" y1="{legend_y - 4}" '
            f'x2="{_LEFT + 34}" y2="{legend_y - 4}" stroke="{colour}"{dash}/>'
            f'<text x="{_LEFT + 40}" y="{legend_y}">{escape(line.label)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _nines(x: float) -> float:
    """Percentile -> axis units: 0% -> 0, 90% -> 1, 99% -> 2, 99.9% -> 3 ..."""
    remaining = 1.0 - x / 100.0
    return math.log10(1.0 / remaining) if remaining > 0 else math.inf


def percentile_chart(title: str, lines: Sequence[Line], *, y_label: str = "latency (ms)") -> str:
    """HdrHistogram's percentile plot: ``(percentile, value)`` points, log-scale x axis.

    The 100% point (the maximum) is drawn at the right end of the axis, which extends to the
    first "nines" beyond the highest finite percentile (at least 99%, at most 99.9999%).
    """
    finite = [_nines(x) for line in lines for x, _ in line.points if x < 100.0]
    top = min(6, max(2, math.ceil(max(finite, default=0.0) + 1e-9)))
    # 1 -> "90%", 2 -> "99%", 3 -> "99.9%": as many decimals as nines beyond two.
    x_ticks = [(0.0, "0%")] + [
        (float(n), f"{100 - 10.0 ** (2 - n):.{max(n - 2, 0)}f}%") for n in range(1, top + 1)
    ]
    high = max((y for line in lines for _, y in line.points), default=1.0)
    return _svg(
        title,
        lines,
        x_ticks,
        nice_ticks(0.0, high),
        "percentile",
        y_label,
        lambda x: min(_nines(x), float(top)),
    )


def time_chart(
    title: str, lines: Sequence[Line], *, y_label: str, x_label: str = "time (s)"
) -> str:
    """Values over time: ``(seconds, value)`` points, linear axes from zero."""
    xs = [x for line in lines for x, _ in line.points]
    ys = [y for line in lines for _, y in line.points]
    x_ticks = nice_ticks(0.0, max(xs, default=1.0), 6)
    return _svg(
        title,
        lines,
        [(x, _label(x)) for x in x_ticks],
        nice_ticks(0.0, max(ys, default=1.0)),
        x_label,
        y_label,
        lambda x: x,
    )
