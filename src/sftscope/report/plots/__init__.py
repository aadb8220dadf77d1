"""Figures of the stages, drawn from their tidy tables only (never from a model) with matplotlib's
object-oriented API: `Figure` + the Agg canvas, so no pyplot state and no backend switch.

  analysis.plot_analysis        representation metrics over relative depth (`sftscope analyze`)
  stages.plot_probe / plot_swap / plot_weights   logit lens, layer swapping, weight change
  correlation.plot_correlation  heatmap of a `correlate` table
  sweep.plot_sweep              a tuning sweep's scores with confidence intervals
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "analysis": ("plot_analysis",),
    "correlation": ("plot_correlation",),
    "stages": ("plot_probe", "plot_swap", "plot_weights"),
    "sweep": ("plot_sweep",),
})
