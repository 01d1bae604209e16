"""The diffusion family. DDPM for now; its schedules live in unigm.schedules and its sampler in
unigm.samplers (DDIM with eta = 1 is DDPM's ancestral chain)."""
from .ddpm import DDPM, DDPMConfig

__all__ = ["DDPM", "DDPMConfig"]
