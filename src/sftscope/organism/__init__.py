"""The built-in model organism: a generated world, a Base model pretrained on it and an SFT model tuned from it."""

from sftscope.organism.build import OrganismPaths, build_organism, default_cache_dir, is_complete
from sftscope.organism.data import DATASET_FILES

__all__ = ["DATASET_FILES", "OrganismPaths", "build_organism", "default_cache_dir", "is_complete"]
