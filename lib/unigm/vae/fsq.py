"""Finite scalar quantization (Mentzer et al. 2023, arXiv:2309.15505): a fixed, implicit codebook.

The class lives on the ground floor, in unigm.nets, because two families use it (the FSQ-VAE here and
VAR's multi-scale tokenizer in unigm.autoregressive), and families never import one another."""
from ..nets import FSQ

__all__ = ["FSQ"]
