"""Small trend charts as PNG without a plotting library: a bitmap, bars and lines, zlib.

The output is deterministic (same figures, same bytes): 8-bit RGB, no ancillary chunks,
filter type 0 on every row. Labels are not drawn: the digest prints the numbers next to
each chart, which also serves readers whose mail client blocks images.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence

from monitor.digest.figures import TrendWeek

Colour = tuple[int, int, int]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WHITE: Colour = (255, 255, 255)
GRID: Colour = (226, 230, 234)
AXIS: Colour = (150, 158, 166)
BLUE: Colour = (120, 166, 214)
DARK_BLUE: Colour = (31, 92, 153)
ORANGE: Colour = (240, 173, 110)
DARK_ORANGE: Colour = (196, 92, 0)
GREEN: Colour = (30, 130, 76)
WIDTH, HEIGHT, MARGIN = 180, 80, 6


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """A PNG of ``width`` x ``height`` 8-bit RGB pixels given row by row."""
    if width <= 0 or height <= 0 or len(rgb) != width * height * 3:
        raise ValueError("pixel data does not match the image size")
    stride = width * 3
    # every scanline starts with its filter type: 0 (none)
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


class Canvas:
    """An RGB bitmap with (0, 0) at the top left."""

    def __init__(self, width: int, height: int, background: Colour = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def fill(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        """Paint the rectangle [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, x0), min(self.width, x1)
        if x0 >= x1:
            return
        row = bytes(colour) * (x1 - x0)
        for y in range(max(0, y0), min(self.height, y1)):
            start = (y * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: Colour, *, width: int = 2) -> None:
        """A straight line ``width`` pixels thick (Bresenham with a square pen)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        lo = width // 2
        while True:
            self.fill(x0 - lo, y0 - lo, x0 - lo + width, y0 - lo + width, colour)
            if x0 == x1 and y0 == y1:
                return
            double = 2 * error
            if double >= dy:
                error += dy
                x0 += sx
            if double <= dx:
                error += dx
                y0 += sy

    def png(self) -> bytes:
        """The bitmap as PNG bytes."""
        return encode_png(self.width, self.height, bytes(self.pixels))


def _frame(canvas: Canvas) -> tuple[int, int]:
    """Grid lines at the top and middle, the axis at the bottom; returns (top, bottom) rows."""
    top, bottom = MARGIN, canvas.height - MARGIN
    canvas.fill(MARGIN, top, canvas.width - MARGIN, top + 1, GRID)
    middle = (top + bottom) // 2
    canvas.fill(MARGIN, middle, canvas.width - MARGIN, middle + 1, GRID)
    canvas.fill(MARGIN, bottom, canvas.width - MARGIN, bottom + 1, AXIS)
    return top, bottom


def _slot(canvas: Canvas, count: int, index: int) -> tuple[int, int]:
    """Left edge and width of the ``index``-th of ``count`` equal slots."""
    inner = canvas.width - 2 * MARGIN
    left = MARGIN + inner * index // count
    return left, MARGIN + inner * (index + 1) // count - left


def bar_chart(
    values: Sequence[int], *, colour: Colour, last_colour: Colour, scale_to: int | None = None
) -> bytes:
    """Bars for ``values`` (the last one, this week, in ``last_colour``) scaled to their max."""
    canvas = Canvas(WIDTH, HEIGHT)
    top, bottom = _frame(canvas)
    peak = max([*values, scale_to or 0, 0])
    for i, value in enumerate(values):
        if value <= 0 or peak <= 0:
            continue
        left, width = _slot(canvas, len(values), i)
        gap = max(1, width // 5)
        height = max(1, round((bottom - top) * value / peak))
        shade = last_colour if i == len(values) - 1 else colour
        canvas.fill(left + gap, bottom - height, left + width - gap, bottom, shade)
    return canvas.png()


def line_chart(
    values: Sequence[float | None], *, colour: Colour, lo: float = 0.0, hi: float = 100.0
) -> bytes:
    """A line through ``values`` on a fixed ``lo``-``hi`` scale; None leaves a gap."""
    canvas = Canvas(WIDTH, HEIGHT)
    top, bottom = _frame(canvas)
    points: list[tuple[int, int] | None] = []
    for i, value in enumerate(values):
        if value is None:
            points.append(None)
            continue
        left, width = _slot(canvas, len(values), i)
        share = (min(hi, max(lo, value)) - lo) / (hi - lo)
        points.append((left + width // 2, bottom - round((bottom - top) * share)))
    for here, there in itertools.pairwise(points):
        if here is not None and there is not None:
            canvas.line(*here, *there, colour)
    for point in points:
        if point is not None:
            x, y = point
            canvas.fill(x - 2, y - 2, x + 3, y + 3, colour)
    return canvas.png()


def trend_charts(trend: Sequence[TrendWeek]) -> dict[str, bytes]:
    """The digest's three charts by Content-ID: items, flagged, compliance %."""
    return {
        "trend-items": bar_chart([w.items for w in trend], colour=BLUE, last_colour=DARK_BLUE),
        "trend-flagged": bar_chart(
            [w.flagged for w in trend], colour=ORANGE, last_colour=DARK_ORANGE
        ),
        "trend-compliance": line_chart([w.compliance_pct for w in trend], colour=GREEN),
    }
