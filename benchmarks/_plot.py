"""The shared look of the benchmark charts.

Every script that draws a chart defines ``plot(results, path)``: ``results`` is the JSON
object the script writes to benchmarks/results/, ``path`` the PNG to write. The script
calls it after writing its JSON, and ``python benchmarks/plots.py`` calls it on the saved
JSON, so a chart can be redrawn without running the benchmark again.

The charts are drawn for the docs, where they are seen on a laptop and on a phone: 4.8
inches wide at 130 dpi (about 620 px) with 11.5-point text (9.6-point "small" labels), so
that a phone's 350-pixel column still shows text of 10 pixels or more; panels are
stacked, not set side by side; bars start at 0; every chart names the CPU it was
measured on; ``bbox_inches="tight"`` so no label is cut.
"""

import textwrap

WIDTH = 4.8  # inches
DPI = 130
BLUE, ORANGE, GREY, LIGHT, GREEN, RED = ("#3b75af", "#e08b2c", "#8a8a8a", "#c8c8c8",
                                         "#2ca02c", "#d62728")


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the charts' font sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.size": 11.5, "axes.titlesize": 11.5, "axes.labelsize": 11.5,
        "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": "small",
        "axes.spines.top": False, "axes.spines.right": False,
    })
    return plt


def figure(heights, **kwargs):
    """A figure ``WIDTH`` wide with one panel per entry of ``heights`` (inches), stacked."""
    plt = pyplot()
    fig, axes = plt.subplots(len(heights), 1, figsize=(WIDTH, sum(heights)), squeeze=False,
                             gridspec_kw=dict(height_ratios=heights), **kwargs)
    return fig, list(axes[:, 0])


def cpu_of(results):
    """The CPU a result was measured on, as its JSON records it."""
    return results.get("cpu") or "CPU not recorded"


def wrap(label, width=28):
    """``label`` cut into lines of at most ``width`` characters (and at its newlines)."""
    return "\n".join(line for part in label.split("\n") for line in textwrap.wrap(part, width))


def hbars(ax, labels, values, colors=BLUE, text=None, xlabel="", xmax=None):
    """Horizontal bars from 0, first label on top, each with its value written after it.

    ``text`` formats a value (or gives the written texts as a list); room is left on the
    right for the longest of them.
    """
    y = list(range(len(values)))[::-1]
    ax.barh(y, values, color=colors, height=0.7)
    ax.set_yticks(y, labels)
    texts = text if isinstance(text, list) else [(text or "{:,.3g}".format)(v) for v in values]
    for yi, v, t in zip(y, values, texts, strict=True):
        ax.text(v, yi, " " + t, va="center", fontsize="small")
    if xmax is None:  # about 0.07 inch a character, on an axis about 3 inches wide
        room = min(0.6, 0.024 * max(len(t) for t in texts) + 0.02)
        xmax = max(values) / (1 - room)
    ax.set_xlim(0, xmax)
    if xmax >= 5000:
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:g}k")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)


def label_points(ax, xs, ys, texts):
    """Write ``texts`` beside the points (right of them, left near the right edge); of two
    points close together, the lower one's label goes below it and the upper one's above.
    Call once the axis limits are set."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for i, (x, y, text) in enumerate(zip(xs, ys, texts, strict=True)):
        near = [ys[j] for j in range(len(xs)) if j != i and abs(xs[j] - x) < 0.1 * (x1 - x0)
                and abs(ys[j] - y) < 0.1 * (y1 - y0)]
        dy = -3 if not near else (-11 if any(v >= y for v in near) else 4)
        left = x > x0 + 0.6 * (x1 - x0)  # near the right edge: above it, ending at it
        ax.annotate(text, (x, y), textcoords="offset points",
                    xytext=(4, 8) if left and not near else (-7 if left else 7, dy),
                    ha="right" if left else "left", fontsize="small")


def save(fig, path, title, cpu, kind="CPU"):
    """Write ``fig`` to ``path`` with a title above and the CPU (or ``kind``) below."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.text(0.5, -0.01, f"{kind}: " + cpu.replace("(R)", ""), ha="center", va="top",
             fontsize="small", color="#444444")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
