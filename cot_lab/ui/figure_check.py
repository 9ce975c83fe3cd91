"""A readability check for the kit's figures: what a reader would complain about, found by rendering.

`figure_problems(fig)` draws `fig` with Agg and lists, one sentence each:
  1. text that overprints other text (tick labels, axis labels, titles, annotations, legend entries);
  2. a legend box that hides a data point (a marker, a scatter point, the top of a bar);
  3. a line, band or point set that nothing explains: no legend label, no legend entry drawn the same way
     (colour aside: colour names a group, e.g. one FLOP budget), no annotation next to it;
  4. a value the prose talks about (`must_show_y`, `must_show_x`) outside every panel's limits;
  5. text that falls off the figure.
`assert_readable(fig, ...)` raises AssertionError listing them. Every plot function's test applies it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection, PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

OVERLAP_PX = 1.0  # glyph boxes that merely touch are not an overprint; antialiasing alone spans a pixel
NEAR_PX = 20.0  # how far an annotation's anchor may sit from the artist it names
NO_MARKER = (None, "", " ", "None", "none")


def figure_problems(fig: Figure, *, must_show_y: Iterable[float] | None = None,
                    must_show_x: Iterable[float] | None = None) -> list[str]:
    """Readability problems of `fig` (see the module docstring), as sentences; [] when it reads cleanly."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # text extents need a real renderer; Agg needs no display
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _visible_texts(fig)
    return [*_overprints(texts, renderer), *_off_figure(texts, fig, renderer), *_hidden_points(fig, renderer),
            *_unexplained(fig, texts, renderer), *_missing_values(fig, must_show_y or (), "y"),
            *_missing_values(fig, must_show_x or (), "x")]


def assert_readable(fig: Figure, **must_show) -> None:
    """Raise AssertionError naming every problem `figure_problems(fig, **must_show)` finds."""
    problems = figure_problems(fig, **must_show)
    if problems:
        raise AssertionError(f"{len(problems)} readability problem(s):\n  " + "\n  ".join(problems))


# ------------------------------------------------------------------ text


def _in_view(axis, loc: float) -> bool:
    """Whether a tick at `loc` is drawn: matplotlib keeps stale labels on ticks outside the view limits."""
    scale = axis.get_transform()
    with np.errstate(all="ignore"):
        lo, hi = sorted(scale.transform(np.asarray(axis.get_view_interval(), float)))
        at = float(scale.transform(np.array([loc], float))[0])
    slack = 1e-6 * max(hi - lo, 1e-300)
    return math.isfinite(at) and lo - slack <= at <= hi + slack


def _visible_texts(fig: Figure) -> list[Text]:
    tick_labels, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                labels = (tick.label1, tick.label2)
                tick_labels.update(map(id, labels))
                if tick.get_visible() and axis.get_visible() and _in_view(axis, tick.get_loc()):
                    drawn.extend(labels)
    hidden_legends = {id(t) for leg in _legends(fig) if not leg.get_visible() for t in leg.get_texts()}
    candidates = [t for t in fig.findobj(Text) if id(t) not in tick_labels and id(t) not in hidden_legends] + drawn
    seen, out = set(), []
    for t in candidates:
        axes = t.axes
        if id(t) in seen or not t.get_visible() or not t.get_text().strip() or (axes is not None and not axes.get_visible()):
            continue
        seen.add(id(t))
        out.append(t)
    return out


def _corners(text: Text, renderer) -> np.ndarray:
    """The four corners (display pixels) of the box around the glyphs, rotated as the text is."""
    box = text.get_window_extent(renderer)
    angle = text.get_rotation()
    if angle % 180 == 0:
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    # A rotated label's axis-aligned box is far larger than its glyphs: slanted neighbours would all "overlap".
    text.set_rotation(0)
    flat = text.get_window_extent(renderer)
    text.set_rotation(angle)
    w, h, theta = flat.width / 2, flat.height / 2, math.radians(angle)
    rotate = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
    return centre + np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) @ rotate.T


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Depth (pixels) by which two convex quadrilaterals overlap along their least-overlapping axis; <= 0 if apart."""
    depth = math.inf
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            normal = np.array([-edge[1], edge[0]]) / (np.hypot(*edge) or 1.0)
            pa, pb = a @ normal, b @ normal
            depth = min(depth, min(pa.max(), pb.max()) - max(pa.min(), pb.min()))
    return depth


def _describe(text: Text) -> str:
    return repr(text.get_text()[:40])


def _overprints(texts: list[Text], renderer) -> list[str]:
    boxes = [_corners(t, renderer) for t in texts]
    out = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if _overlap(boxes[i], boxes[j]) > OVERLAP_PX:
                out.append(f"text {_describe(texts[i])} overprints text {_describe(texts[j])}")
    return out


def _off_figure(texts: list[Text], fig: Figure, renderer) -> list[str]:
    box = fig.bbox
    return [f"text {_describe(t)} runs off the figure" for t, c in ((t, _corners(t, renderer)) for t in texts)
            if c[:, 0].min() < box.x0 - OVERLAP_PX or c[:, 0].max() > box.x1 + OVERLAP_PX
            or c[:, 1].min() < box.y0 - OVERLAP_PX or c[:, 1].max() > box.y1 + OVERLAP_PX]


# ------------------------------------------------------------------ legends over data


def _legends(fig: Figure) -> list:
    return [leg for leg in [*(ax.get_legend() for ax in fig.axes), *fig.legends] if leg is not None]


def _data_points(ax, renderer) -> list[tuple[str, np.ndarray, float]]:
    """(what, display xy of each drawn point, marker radius in pixels) for the markers, scatter points and bars."""
    px = ax.figure.dpi / 72
    out = []
    for line in ax.lines:
        if line.get_visible() and line.get_marker() not in NO_MARKER and len(line.get_xdata()):
            xy = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float))
            out.append((f"a point of {line.get_label()!r}", xy, line.get_markersize() * px / 2))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), float)
        if isinstance(coll, PathCollection) and coll.get_visible() and len(offsets) and len(coll.get_sizes()):
            radius = math.sqrt(float(np.max(coll.get_sizes()))) * px / 2
            out.append((f"a point of {coll.get_label()!r}", coll.get_offset_transform().transform(offsets), radius))
    for container in ax.containers:
        for bar in getattr(container, "patches", []) or []:
            if bar.get_visible() and hasattr(bar, "get_height"):
                top = (bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height())
                out.append((f"the top of a bar of {container.get_label()!r}", ax.transData.transform([top]), 0.0))
    inside = ax.get_window_extent(renderer)
    return [(what, xy[(xy[:, 0] >= inside.x0) & (xy[:, 0] <= inside.x1) & (xy[:, 1] >= inside.y0)
                      & (xy[:, 1] <= inside.y1)], r) for what, xy, r in out]


def _hidden_points(fig: Figure, renderer) -> list[str]:
    out = []
    for legend in _legends(fig):
        if not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            for what, xy, radius in _data_points(ax, renderer):
                under = (xy[:, 0] > box.x0 - radius) & (xy[:, 0] < box.x1 + radius) \
                        & (xy[:, 1] > box.y0 - radius) & (xy[:, 1] < box.y1 + radius)
                if under.any():
                    out.append(f"the legend hides {int(under.sum())} of {len(xy)} {what.replace('a point', 'points', 1)}"
                               if under.sum() > 1 else f"the legend hides {what}")
    return out


# ------------------------------------------------------------------ unexplained artists


def _named(label: str) -> bool:
    return bool(label) and not label.startswith("_")


def _look(line: Line2D) -> tuple:
    """How a line is drawn, colour aside."""
    alpha = line.get_alpha()
    return (line.get_linestyle(), str(line.get_marker()), round(line.get_linewidth(), 1),
            round(1.0 if alpha is None else alpha, 2))


def _outline(artist) -> list[np.ndarray]:
    """The artist as display-space polylines: a line's vertices, each path of a band, a scatter's points."""
    if isinstance(artist, Line2D):
        return [artist.get_transform().transform(np.column_stack([artist.get_xdata(), artist.get_ydata()]).astype(float))]
    if isinstance(artist, PathCollection) and len(artist.get_offsets()):
        return [artist.get_offset_transform().transform(np.asarray(artist.get_offsets(), float))]
    paths = artist.get_paths() if isinstance(artist, Collection) else [artist.get_path()]
    return [artist.get_transform().transform(path.vertices) for path in paths if len(path.vertices)]


def _distance(point: np.ndarray, polyline: np.ndarray) -> float:
    """Pixels from `point` to the nearest segment (or lone vertex) of `polyline`."""
    if len(polyline) == 1:
        return float(np.hypot(*(polyline[0] - point)))
    start, end = polyline[:-1], polyline[1:]
    along = end - start
    length2 = np.maximum((along**2).sum(axis=1), 1e-12)
    t = np.clip(((point - start) * along).sum(axis=1) / length2, 0.0, 1.0)
    nearest = start + t[:, None] * along
    return float(np.nanmin(np.hypot(*(nearest - point).T)))


def _text_anchor(t: Text, renderer) -> np.ndarray:
    """Where a text points: an Annotation's data point, else the middle of its words."""
    if getattr(t, "xy", None) is not None and t.xycoords == "data":
        return t.axes.transData.transform([t.xy])[0]
    box = t.get_window_extent(renderer)
    return np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])


def _annotated(artist, texts: list[Text], renderer) -> bool:
    outline = _outline(artist)
    for t in texts:
        if t.axes is artist.axes and t.axes is not None:
            at = _text_anchor(t, renderer)
            inside = isinstance(artist, Patch) and artist.contains_point(at)
            if inside or any(_distance(at, part) <= NEAR_PX for part in outline):
                return True
    return False


def _unexplained(fig: Figure, texts: list[Text], renderer) -> list[str]:
    out = []
    for ax in fig.axes:
        in_containers = {id(a) for c in ax.containers if _named(c.get_label()) for a in c.get_children()}
        named_looks = {_look(line) for line in ax.lines if _named(line.get_label())}
        drawn = [a for a in [*ax.lines, *ax.collections, *ax.patches] if a.get_visible()]
        for artist in drawn:
            if _named(artist.get_label()) or id(artist) in in_containers:
                continue
            if isinstance(artist, Line2D) and (not len(artist.get_xdata()) or _look(artist) in named_looks):
                continue
            if _annotated(artist, texts, renderer):
                continue
            kind = "line" if isinstance(artist, Line2D) else "band or patch" if isinstance(artist, Patch) else "point set"
            out.append(f"a {kind} in {ax.get_title()[:40]!r} has no label, no legend entry drawn like it and no "
                       f"annotation next to it (label {artist.get_label()!r})")
    return out


# ------------------------------------------------------------------ values the prose describes


def _missing_values(fig: Figure, values: Iterable[float], which: str) -> list[str]:
    limits = [sorted(ax.get_ylim() if which == "y" else ax.get_xlim()) for ax in fig.axes if ax.has_data()]
    return [f"{which} = {v:g} is outside every panel's {which} range "
            f"({', '.join(f'{lo:.4g} to {hi:.4g}' for lo, hi in limits) or 'no panel draws data'})"
            for v in values if not any(lo <= v <= hi for lo, hi in limits)]
