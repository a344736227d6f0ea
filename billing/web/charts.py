"""Server-rendered charts: the geometry of a stacked bar chart, computed exactly (Decimal),
for a template to draw as SVG. No JavaScript, no chart CDN."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.money import group_quantity

WIDTH, HEIGHT = Decimal(720), Decimal(300)
LEFT, RIGHT, TOP, BOTTOM = Decimal(72), Decimal(12), Decimal(12), Decimal(30)
STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
TENTH = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Rect:
    x: str
    y: str
    width: str
    height: str
    series: int
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: str
    label: str


@dataclass(frozen=True, slots=True)
class Label:
    x: str
    text: str


@dataclass(frozen=True, slots=True)
class StackedBars:
    width: str
    height: str
    left: str
    right: str
    baseline: str
    rects: tuple[Rect, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[Label, ...]
    series: tuple[str, ...]


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (value > 0)."""
    exponent = value.adjusted()
    for _ in range(2):
        unit = Decimal(1).scaleb(exponent)
        for step in STEPS:
            if step * unit >= value:
                return step * unit
        exponent += 1
    raise AssertionError("unreachable")


def _fmt(value: Decimal) -> str:
    return f"{value.quantize(TENTH):f}"


def _axis_label(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def stacked_bars(
    categories: list[str],
    series: list[tuple[str, list[Decimal]]],
    unit: str,
) -> StackedBars:
    """Bars per category (a month), stacked by series (a product); negative values drawn
    as zero (the table beside the chart shows every figure)."""
    totals = [
        sum((max(values[i], Decimal(0)) for _, values in series), Decimal(0))
        for i in range(len(categories))
    ]
    top = nice_ceiling(max(totals)) if totals and max(totals) > 0 else Decimal(1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(categories), 1)
    bar = slot * Decimal("0.64")
    rects: list[Rect] = []
    labels: list[Label] = []
    for i, category in enumerate(categories):
        x = LEFT + slot * i + (slot - bar) / 2
        labels.append(Label(_fmt(x + bar / 2), category))
        stacked = Decimal(0)
        for index, (name, values) in enumerate(series):
            value = max(values[i], Decimal(0))
            if value == 0:
                continue
            height = plot_h * value / top
            y = TOP + plot_h - plot_h * (stacked + value) / top
            stacked += value
            title = f"{name}, {category}: {group_quantity(value)} {unit}"
            rects.append(Rect(_fmt(x), _fmt(y), _fmt(bar), _fmt(height), index, title))
    ticks = tuple(
        Tick(_fmt(TOP + plot_h - plot_h * k / 4), _axis_label(top * k / 4)) for k in range(5)
    )
    return StackedBars(
        width=_fmt(WIDTH),
        height=_fmt(HEIGHT),
        left=_fmt(LEFT),
        right=_fmt(WIDTH - RIGHT),
        baseline=_fmt(TOP + plot_h),
        rects=tuple(rects),
        ticks=ticks,
        labels=tuple(labels),
        series=tuple(name for name, _ in series),
    )
