"""The pure-Python PNG charts, read back with a minimal PNG decoder written here."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import pytest

from monitor.digest import charts
from monitor.digest.figures import TrendWeek


@dataclass
class Image:
    width: int
    height: int
    rows: list[bytes]  # RGB, 3 bytes a pixel

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        r, g, b = self.rows[y][x * 3 : x * 3 + 3]
        return (r, g, b)

    def column(self, x: int) -> list[tuple[int, int, int]]:
        return [self.pixel(x, y) for y in range(self.height)]


def decode(data: bytes) -> Image:
    """Signature, chunk CRCs, IHDR (8-bit RGB only), IDAT inflate, filter 0 rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0, "only filter type 0 is written"
        rows.append(line[1:])
    return Image(width, height, rows)


def trend(items: list[int], flagged: list[int], compliance: list[float | None]) -> list[TrendWeek]:
    return [TrendWeek(f"2026-W{40 + i}", items[i], flagged[i], compliance[i]) for i in range(8)]


def test_encode_png_round_trips_pixels() -> None:
    pixels = bytes(range(2 * 3 * 3)) * 1  # 3 x 2 pixels
    image = decode(charts.encode_png(3, 2, pixels[:18]))
    assert (image.width, image.height) == (3, 2)
    assert image.pixel(0, 0) == (0, 1, 2)
    assert image.pixel(2, 1) == (15, 16, 17)


@pytest.mark.parametrize(("width", "height", "size"), [(0, 1, 0), (2, 2, 11), (1, 1, 4)])
def test_encode_png_refuses_mismatched_pixels(width: int, height: int, size: int) -> None:
    with pytest.raises(ValueError, match="does not match"):
        charts.encode_png(width, height, bytes(size))


def test_bar_chart_heights_follow_the_values() -> None:
    values = [10, 0, 5, 20, 20, 1, 0, 40]
    image = decode(charts.bar_chart(values, colour=charts.BLUE, last_colour=charts.DARK_BLUE))
    assert (image.width, image.height) == (charts.WIDTH, charts.HEIGHT)
    top, bottom = charts.MARGIN, charts.HEIGHT - charts.MARGIN
    inner = charts.WIDTH - 2 * charts.MARGIN

    def bar_height(index: int) -> int:
        centre = charts.MARGIN + inner * index // 8 + inner // 16
        colours = image.column(centre)
        return sum(1 for c in colours if c in (charts.BLUE, charts.DARK_BLUE))

    heights = [bar_height(i) for i in range(8)]
    full = bottom - top
    assert heights[7] == full  # the largest reaches the top grid line
    assert heights[3] == heights[4] == round(full * 20 / 40)
    assert heights[1] == heights[6] == 0
    assert heights[5] == round(full * 1 / 40) == 2
    # this week's bar is the dark one, earlier weeks the light one
    centre_last = charts.MARGIN + inner * 7 // 8 + inner // 16
    assert image.pixel(centre_last, bottom - 1) == charts.DARK_BLUE
    centre_first = charts.MARGIN + inner // 16
    assert image.pixel(centre_first, bottom - 1) == charts.BLUE
    assert image.pixel(0, 0) == charts.WHITE
    assert image.pixel(charts.MARGIN, bottom) == charts.AXIS


def test_a_tiny_value_still_shows_one_pixel() -> None:
    image = decode(charts.bar_chart([1, 1000], colour=charts.BLUE, last_colour=charts.DARK_BLUE))
    inner = charts.WIDTH - 2 * charts.MARGIN
    column = image.column(charts.MARGIN + inner // 4)
    assert sum(1 for c in column if c == charts.BLUE) == 1


def test_all_zero_bars_draw_only_the_frame() -> None:
    image = decode(charts.bar_chart([0] * 8, colour=charts.BLUE, last_colour=charts.DARK_BLUE))
    colours = {image.pixel(x, y) for y in range(image.height) for x in range(image.width)}
    assert colours == {charts.WHITE, charts.GRID, charts.AXIS}


def test_line_chart_breaks_where_nothing_was_measured() -> None:
    values: list[float | None] = [100.0, 100.0, None, None, 0.0, 50.0, 50.0, 100.0]
    image = decode(charts.line_chart(values, colour=charts.GREEN))
    inner = charts.WIDTH - 2 * charts.MARGIN
    top, bottom = charts.MARGIN, charts.HEIGHT - charts.MARGIN

    def centre(i: int) -> int:
        left = charts.MARGIN + inner * i // 8
        return left + (charts.MARGIN + inner * (i + 1) // 8 - left) // 2

    assert image.pixel(centre(0), top) == charts.GREEN  # 100% on the top line
    assert image.pixel(centre(4), bottom) == charts.GREEN  # 0% on the axis
    assert image.pixel(centre(5), (top + bottom) // 2) == charts.GREEN
    # no line through the weeks without a figure
    assert charts.GREEN not in image.column(centre(2))
    assert charts.GREEN not in image.column(centre(3))


def test_trend_charts_are_deterministic_and_named_by_cid() -> None:
    weeks = trend([5, 6, 7, 8, 9, 10, 11, 12], [1, 0, 2, 0, 3, 0, 4, 5], [None] * 7 + [80.0])
    first, second = charts.trend_charts(weeks), charts.trend_charts(weeks)
    assert first == second
    assert set(first) == {"trend-items", "trend-flagged", "trend-compliance"}
    for png in first.values():
        assert decode(png).width == charts.WIDTH
        assert len(png) < 4000  # small enough to inline in every email
    changed = charts.trend_charts(trend([5] * 8, [0] * 8, [None] * 8))
    assert changed["trend-items"] != first["trend-items"]
