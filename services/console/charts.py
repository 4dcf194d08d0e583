"""Small charts drawn on the server as inline SVG: readable at a glance, no build step."""

from __future__ import annotations

from markupsafe import Markup


def sparkline(counts: list[int], *, width: int = 240, height: int = 36) -> Markup:
    """One bar per minute, oldest left; the scale is printed beside it by the page."""
    if not counts:
        return Markup("")
    peak = max(counts) or 1
    bar = width / len(counts)
    bars = []
    for minute, count in enumerate(counts):
        if count == 0:
            continue  # the baseline shows quiet minutes; no element per empty bar
        tall = max(1.5, count / peak * (height - 2))
        ago = len(counts) - minute - 1
        label = f"{count} message{'s' if count != 1 else ''}, {ago} min ago"
        bars.append(
            f'<rect x="{minute * bar:.1f}" y="{height - tall:.1f}" width="{max(bar - 1, 1):.1f}"'
            f' height="{tall:.1f}"><title>{label}</title></rect>'
        )
    baseline = f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="base"/>'
    # Only numbers and fixed text go in, so there is nothing to escape.
    return Markup(  # noqa: S704
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="messages per minute, last hour">{baseline}{"".join(bars)}</svg>'
    )
