"""The frontier (lecture 05): models and tools that run here but sit at the edge of the field.

Stochastic interpolants and the Schrodinger bridge (interpolants), DiffFlow (diffflow), Energy
Matching (energy_matching), Wasserstein gradient flows with particles and unbalanced optimal
transport (gradient_flows). None of them is in the zoo: they are trained and measured in lecture 05."""
from . import diffflow, energy_matching, gradient_flows, interpolants
from .energy_matching import EnergyMatching, EnergyMatchingConfig
from .interpolants import InterpolantConfig, StochasticInterpolant

__all__ = ["EnergyMatching", "EnergyMatchingConfig", "InterpolantConfig", "StochasticInterpolant", "diffflow",
           "energy_matching", "gradient_flows", "interpolants"]
