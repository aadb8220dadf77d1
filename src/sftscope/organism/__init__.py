"""The built-in model organism: a generated world, a Base model pretrained on it and an SFT model tuned from it.

Names are re-exported lazily: `sftscope.organism.data` (the organism's data files) loads no torch.
"""

from sftscope._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "build": ("OrganismPaths", "build_organism", "default_cache_dir", "is_complete"),
    "data": ("DATASET_FILES",),
})
