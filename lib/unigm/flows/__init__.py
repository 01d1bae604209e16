"""Flow models: invertible maps and velocity fields that carry data (t = 0) to noise (t = 1).

    matching.py   flow matching (independent and minibatch-OT couplings), rectified flow, straightness
    cnf.py        continuous normalizing flows trained by maximum likelihood (exact trace, Hutchinson)
    coupling.py   RealNVP: affine coupling layers, exact invertible maps
"""
from .cnf import CNF, CNFConfig, HutchinsonCNF
from .coupling import AffineCoupling, CouplingStack, RealNVP, RealNVPConfig
from .matching import FlowMatching, FlowMatchingConfig, OTFlowMatching, RectifiedFlow, straightness

__all__ = ["AffineCoupling", "CNF", "CNFConfig", "CouplingStack", "FlowMatching", "FlowMatchingConfig",
           "HutchinsonCNF", "OTFlowMatching", "RealNVP", "RealNVPConfig", "RectifiedFlow", "straightness"]
