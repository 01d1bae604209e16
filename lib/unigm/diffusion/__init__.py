"""The diffusion family. DDPM for now; its schedules live in unigm.schedules and its sampler in
unigm.samplers (DDIM with eta = 1 is DDPM's ancestral chain)."""
from .ddpm import DDPM, DDPMConfig
from .ddpm import DDPMv, DDPMvConfig, DDPMx0, DDPMx0Config
from .targets import (TARGETS, PredictionTarget, eps_weight_epsilon, eps_weight_v, eps_weight_x0,
                      eps_weight_x0_preconditioned, prediction_target, preconditioning)
from .score_sde import ScoreSDE, ScoreSDEConfig, VEScoreSDE, VEScoreSDEConfig, VPScoreSDE, VPScoreSDEConfig
from .consistency import ConsistencyDistillation, ConsistencyModel, ConsistencyTraining  # noqa: F401
from .latent import LatentDiffusion, LatentDiffusionConfig, PixelDDPM, PixelDDPMConfig, unit_variance_scale

__all__ = ["DDPM", "DDPMConfig"]
__all__ += ["DDPMv", "DDPMvConfig", "DDPMx0", "DDPMx0Config", "TARGETS", "PredictionTarget", "eps_weight_epsilon",
            "eps_weight_v", "eps_weight_x0", "eps_weight_x0_preconditioned", "prediction_target", "preconditioning"]
__all__ += ["ScoreSDE", "ScoreSDEConfig", "VEScoreSDE", "VEScoreSDEConfig", "VPScoreSDE", "VPScoreSDEConfig"]
