"""The monitor page's charts, drawn on the server as inline SVG: a bar per value, and a
suppressed value (too few to show) as an empty outlined bar labelled so, never as zero."""

from __future__ import annotations

from markupsafe import Markup, escape

SUPPRESSED = "too few to show"


def bars(values: list[tuple[str, int | None]], *, label: str, width: int = 560) -> Markup:
    """Horizontal bars, one row per (name, count); ``label`` names the chart for readers."""
    row, text_width, gap = 22, 190, 6
    height = row * len(values) + 2
    shown = [count for _, count in values if count is not None]
    peak = max(shown, default=0) or 1
    span = width - text_width - 70
    rows = []
    for index, (name, count) in enumerate(values):
        y = index * row + 1
        caption = escape(name)
        rows.append(f'<text x="{text_width - gap}" y="{y + 15}" text-anchor="end">{caption}</text>')
        if count is None:
            rows.append(
                f'<rect class="suppressed" x="{text_width}" y="{y + 3}" width="{span * 0.15:.1f}"'
                f' height="{row - 8}"><title>{caption}: {SUPPRESSED}</title></rect>'
                f'<text x="{text_width + span * 0.15 + gap:.1f}" y="{y + 15}" class="muted">'
                f"{SUPPRESSED}</text>"
            )
            continue
        long = max(1.0, count / peak * span) if count else 0.0
        rows.append(
            f'<rect x="{text_width}" y="{y + 3}" width="{long:.1f}" height="{row - 8}">'
            f"<title>{caption}: {count}</title></rect>"
            f'<text x="{text_width + long + gap:.1f}" y="{y + 15}">{count}</text>'
        )
    # Names are escaped; everything else is numbers and fixed text.
    return Markup(  # noqa: S704
        f'<svg class="bars" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(label)}">{"".join(rows)}</svg>'
    )
