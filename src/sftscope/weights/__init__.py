"""Base-vs-fine-tuned weight change per block and module, streamed from checkpoint files.

Names are re-exported lazily (importing the package loads no torch).
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "change": ("weight_change", "weight_change_frame"),
    "diff": ("Distance", "tensor_distance"),
    "naming": ("canonical_name", "classify"),
    "sources": ("open_source",),
})
