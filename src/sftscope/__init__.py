"""sftscope: layer-wise analysis of what supervised fine-tuning changes, and Mid-Block Efficient Tuning."""

__version__ = "0.1.0"
