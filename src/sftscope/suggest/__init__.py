"""Training-free choice of the blocks to tune (`sftscope suggest`) and its check against a tuning sweep.

Names are re-exported lazily (importing the package loads no torch).
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "compare": ("compare_with_sweep",),
    "decide": ("LayerProfiles", "Suggestion", "suggest_blocks"),
})
