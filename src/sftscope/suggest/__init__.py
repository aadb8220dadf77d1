"""Training-free choice of the blocks to tune (`sftscope suggest`) and its check against a tuning sweep."""

from sftscope.suggest.compare import compare_with_sweep
from sftscope.suggest.decide import LayerProfiles, Suggestion, suggest_blocks

__all__ = ["LayerProfiles", "Suggestion", "suggest_blocks", "compare_with_sweep"]
