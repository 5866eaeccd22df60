"""The page's two drawings, as inline SVG: the lag chart and a saga type's steps.

Both are plain markup (no script draws them), built with
:func:`~cqrs_ddd_ops.web.markup.element`, so every name in them is escaped.
Colours are SVG presentation attributes, allowed by the page's content
security policy (which refuses inline ``style``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cqrs_ddd_ops.sagas import StepRow
from cqrs_ddd_ops.web.markup import Markup, element, join
from cqrs_ddd_ops.web.sampler import LagSample

PALETTE = (
    "#2563eb",
    "#d97706",
    "#059669",
    "#db2777",
    "#7c3aed",
    "#0891b2",
    "#65a30d",
    "#dc2626",
)
"""The series' colours, in turn."""

OUTCOME_COLOURS = {
    "done": "#bbf7d0",
    "confirmed": "#86efac",
    "sent": "#bfdbfe",
    "failed": "#fecaca",
    "unknown": "#fde68a",
    "compensated": "#fed7aa",
}
"""The fill of a step box by what became of the step; a step not taken is left white."""

_WIDTH, _HEIGHT = 760, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 16, 12, 30


def colour_of(index: int) -> str:
    """Return the colour of the ``index``-th series."""
    return PALETTE[index % len(PALETTE)]


def nice_ceiling(value: float) -> float:
    """Return the smallest of 1, 2, 5 times a power of ten that is at least ``value`` (>= 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop ends at 10


def lag_chart(samples: Sequence[LagSample], *, now: float, window: float) -> Markup:
    """Return the chart of each worker's lag (events behind) over ``window`` seconds to ``now``.

    One line per worker, in name order, coloured as :func:`series_names` orders
    them; the y axis goes from 0 to a round number above the highest lag.
    """
    names = series_names(samples)
    plot_width = _WIDTH - _LEFT - _RIGHT
    plot_height = _HEIGHT - _TOP - _BOTTOM
    highest = max((lag for sample in samples for lag in sample.lag_events.values()), default=0)
    top = nice_ceiling(highest)
    start = now - window

    def x(moment: float) -> float:
        return round(_LEFT + max(moment - start, 0.0) / window * plot_width, 1)

    def y(lag: float) -> float:
        return round(_TOP + plot_height - lag / top * plot_height, 1)

    parts: list[Markup] = []
    for fraction in (0.0, 0.5, 1.0):
        level = y(top * fraction)
        parts.append(
            element("line", x1=_LEFT, x2=_WIDTH - _RIGHT, y1=level, y2=level, stroke="#e5e7eb")
        )
        label = f"{top * fraction:g}"
        parts.append(
            element(
                "text",
                label,
                x=_LEFT - 6,
                y=level + 4,
                text_anchor="end",
                font_size=11,
                fill="#555",
            )
        )
    minutes = round(window / 60)
    for quarter in range(5):
        moment = start + window * quarter / 4
        label = "now" if quarter == 4 else f"-{minutes - minutes * quarter // 4} min"
        parts.append(
            element(
                "text",
                label,
                x=x(moment),
                y=_HEIGHT - 10,
                text_anchor="middle",
                font_size=11,
                fill="#555",
            )
        )
    for index, name in enumerate(names):
        points = [(x(s.at), y(s.lag_events[name])) for s in samples if name in s.lag_events]
        colour = colour_of(index)
        if len(points) == 1:
            (cx, cy) = points[0]
            parts.append(element("circle", element("title", name), cx=cx, cy=cy, r=3, fill=colour))
            continue
        parts.append(
            element(
                "polyline",
                element("title", name),
                points=" ".join(f"{px},{py}" for px, py in points),
                fill="none",
                stroke=colour,
                stroke_width=2,
            )
        )
    parts.append(
        element("line", x1=_LEFT, x2=_LEFT, y1=_TOP, y2=_TOP + plot_height, stroke="#9ca3af")
    )
    return element(
        "svg",
        element("title", f"events behind, over the last {minutes} minutes"),
        *parts,
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {_WIDTH} {_HEIGHT}",
        width=_WIDTH,
        height=_HEIGHT,
        role="img",
        class_="chart",
        id="lag-chart",
    )


def series_names(samples: Sequence[LagSample]) -> list[str]:
    """Return the workers that appear in ``samples``, in name order (the chart's series)."""
    return sorted({name for sample in samples for name in sample.lag_events})


_BOX_WIDTH, _BOX_HEIGHT, _GAP, _MARGIN = 204, 62, 40, 10


def saga_diagram(
    saga_type: str,
    shape: Sequence[str],
    *,
    taken: Sequence[StepRow] = (),
    status: str | None = None,
) -> Markup:
    """Return the steps of ``saga_type`` as boxes joined by arrows, then where it ends.

    Without ``taken`` it is the type's shape. With an instance's steps and
    status, each box is filled by what became of that step (see
    :data:`OUTCOME_COLOURS`; a step it has not taken stays white and dashed),
    names the command sent and, for a compensated step, its compensation;
    the last box is the instance's status.
    """
    outcomes = {step.step: step for step in taken}
    steps = list(shape) + [step.step for step in taken if step.step not in shape]
    ending = status or "completed"
    count = len(steps) + 1
    width = _MARGIN * 2 + count * _BOX_WIDTH + (count - 1) * _GAP
    height = _MARGIN * 2 + _BOX_HEIGHT
    marker = f"arrow-{_identifier(saga_type)}-{'instance' if taken else 'shape'}"
    parts: list[Markup] = [
        element(
            "defs",
            element(
                "marker",
                element("path", d="M0,0 L10,5 L0,10 z", fill="#6b7280"),
                id=marker,
                viewBox="0 0 10 10",
                refX=10,
                refY=5,
                markerWidth=8,
                markerHeight=8,
                orient="auto",
            ),
        )
    ]
    for index, name in enumerate(steps):
        left = _MARGIN + index * (_BOX_WIDTH + _GAP)
        record = outcomes.get(name)
        lines = [name]
        if record is not None:
            lines.append(f"{record.command_type}: {record.outcome}")
            if record.outcome == "compensated" and record.compensation:
                lines.append(f"undone by {record.compensation}")
        elif taken:
            lines.append("not taken")
        fill = OUTCOME_COLOURS.get(record.outcome, "#ffffff") if record else "#ffffff"
        dashed = "5 4" if taken and record is None else None
        parts.append(
            _box(left, lines, fill=fill, dashed=dashed, data_step=name,
                 data_outcome=record.outcome if record else None)
        )  # fmt: skip
        parts.append(
            element(
                "line",
                x1=left + _BOX_WIDTH,
                x2=left + _BOX_WIDTH + _GAP - 2,
                y1=_MARGIN + _BOX_HEIGHT / 2,
                y2=_MARGIN + _BOX_HEIGHT / 2,
                stroke="#6b7280",
                stroke_width=2,
                marker_end=f"url(#{marker})",
            )
        )
    left = _MARGIN + len(steps) * (_BOX_WIDTH + _GAP)
    end_fill = {"completed": "#bbf7d0", "parked": "#fecaca", "compensated": "#fed7aa"}
    parts.append(
        _box(left, [ending if taken else "completed"], fill=end_fill.get(ending, "#e0e7ff"),
             rounded=30, data_step="end")
    )  # fmt: skip
    title = f"{saga_type}: " + " then ".join(steps) if steps else f"{saga_type}: no step yet"
    return element(
        "svg",
        element("title", title),
        *parts,
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        role="img",
        class_="diagram",
    )


def _box(
    left: float,
    lines: Sequence[str],
    *,
    fill: str,
    dashed: str | None = None,
    rounded: int = 6,
    **data: str | None,
) -> Markup:
    shown = lines[:3]
    texts = [
        element(
            "text",
            line,
            x=left + _BOX_WIDTH / 2,
            y=_MARGIN + _BOX_HEIGHT / 2 + 4 + (index - (len(shown) - 1) / 2) * 16,
            text_anchor="middle",
            font_size=13 if index == 0 else 11,
            font_weight="bold" if index == 0 else None,
            fill="#111827",
        )
        for index, line in enumerate(shown)
    ]
    return element(
        "g",
        element(
            "rect",
            x=left,
            y=_MARGIN,
            width=_BOX_WIDTH,
            height=_BOX_HEIGHT,
            rx=rounded,
            fill=fill,
            stroke="#374151",
            stroke_dasharray=dashed,
        ),
        join(*texts),
        class_="step",
        **data,
    )


def legend(names: Sequence[str], latest: Mapping[str, int]) -> Markup:
    """Return the chart's legend: each series' colour, name and lag at the last sample."""
    return element(
        "ul",
        [
            element(
                "li",
                element(
                    "svg",
                    element("rect", width=12, height=12, fill=colour_of(index)),
                    width=12,
                    height=12,
                    aria_hidden="true",
                ),
                f" {name}: {latest.get(name, 0)} behind",
            )
            for index, name in enumerate(names)
        ],
        class_="legend",
    )


def _identifier(text: str) -> str:
    return "".join(character if character.isalnum() else "-" for character in text)
