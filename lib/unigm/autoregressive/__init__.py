"""The autoregressive family: p(x) = prod_i p(x_i | x_<i). So far the causal convolutions of WaveNet."""
from .causal import CausalConv1d, DilatedCausalStack

__all__ = ["CausalConv1d", "DilatedCausalStack"]
