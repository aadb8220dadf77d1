"""The top layer: one self-contained HTML report from run directories, and every figure the stages draw.

Reads tables and figures only, never a model; importing it loads neither torch nor transformers, and drawing
uses matplotlib's object-oriented API (no pyplot, no backend switch). `sftscope.report.plots` holds the
stage figures (analysis, probe, swap, weights, correlation, sweep).
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "build": ("build_report", "write_report"),
    "data": ("RunData", "load_run"),
})
