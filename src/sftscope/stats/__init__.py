"""Statistics over tidy tables and pooled matrices: correlation across layers, bootstrap, split robustness."""

from sftscope.stats.correlate import LAYER_CONVENTION, correlate, weight_series
from sftscope.stats.uncertainty import bootstrap_ci, bootstrap_distribution, split_robustness

__all__ = ["LAYER_CONVENTION", "correlate", "weight_series", "bootstrap_ci",
           "bootstrap_distribution", "split_robustness"]
