"""A matplotlib figure drawn without pyplot: no global figure registry, no backend switch for the caller."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def agg_figure(**kwargs) -> Figure:
    """A `Figure(**kwargs)` attached to its own Agg canvas (what `savefig` to PNG and `tight_layout` render with).

    Unlike `pyplot.subplots` it leaves `matplotlib.get_backend()` and pyplot's open figures alone, so a notebook
    that imports or calls sftscope keeps its inline backend; the figure is freed with its last reference.
    """
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
