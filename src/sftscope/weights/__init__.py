"""Base-vs-fine-tuned weight change per block and module, streamed from checkpoint files."""

from sftscope.weights.change import weight_change, weight_change_frame
from sftscope.weights.diff import Distance, tensor_distance
from sftscope.weights.naming import canonical_name, classify
from sftscope.weights.sources import open_source

__all__ = ["weight_change", "weight_change_frame", "Distance", "tensor_distance", "canonical_name", "classify",
           "open_source"]
