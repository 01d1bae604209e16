"""The model registry: `names()` and `make(name, event_shape, **config)`.

Each entry is a model class with a config dataclass beside it; `make` fills the config from
keyword arguments, so `make("ddpm", (2,), hidden=128)` builds DDPM(event_shape=(2,),
config=DDPMConfig(hidden=128)).
"""
from __future__ import annotations

import dataclasses
import importlib

from . import runtime
from .base import GenerativeModel

_REGISTRY: dict[str, str] = {
    "vae": "unigm.vae:VAE",
    "beta_vae": "unigm.vae:BetaVAE",
    "bernoulli_vae": "unigm.vae:BernoulliVAE",
    "vqvae": "unigm.vae:VQVAE",
    "fsq_vae": "unigm.vae:FSQVAE",
    "gan": "unigm.gan:GAN",
    "minimax_gan": "unigm.gan:MinimaxGAN",
    "wgan_clip": "unigm.gan:WGANClip",
    "wgan_gp": "unigm.gan:WGANGP",
    "wgan_sn": "unigm.gan:WGANSN",
    "f_gan": "unigm.gan:FGAN",
    "stylegan": "unigm.gan:StyleGAN",
    "r3gan": "unigm.gan:R3GAN",
    "flow_matching": "unigm.flows:FlowMatching",
    "ot_flow_matching": "unigm.flows:OTFlowMatching",
    "rectified_flow": "unigm.flows:RectifiedFlow",
    "cnf": "unigm.flows:CNF",
    "cnf_hutchinson": "unigm.flows:HutchinsonCNF",
    "realnvp": "unigm.flows:RealNVP",
    "ddpm": "unigm.diffusion:DDPM",
}

# Training recipes for 2D data in the quick profile, measured on a 2-core CPU (train seconds
# and the quality G they reach are in build/bench.md; `make bench`). The full profile trains
# four times longer.
_RECIPES: dict[str, dict] = {
    "vae": dict(steps=3000, batch_size=256, lr=2e-3),
    "beta_vae": dict(steps=3000, batch_size=256, lr=2e-3),
    "gan": dict(steps=1000, batch_size=256, lr=1e-3),
    "minimax_gan": dict(steps=1000, batch_size=256, lr=1e-3),
    "wgan_clip": dict(steps=500, batch_size=256, lr=1e-3),
    "wgan_gp": dict(steps=500, batch_size=256, lr=1e-3),
    "wgan_sn": dict(steps=500, batch_size=256, lr=1e-3),
    "f_gan": dict(steps=700, batch_size=256, lr=1e-3),
    "stylegan": dict(steps=800, batch_size=256, lr=1e-3),
    "r3gan": dict(steps=1000, batch_size=256, lr=1e-3),
    "flow_matching": dict(steps=3000, batch_size=256, lr=4e-3, ema_decay=0.995),
    "ot_flow_matching": dict(steps=2000, batch_size=256, lr=4e-3, ema_decay=0.995),
    "rectified_flow": dict(steps=3000, batch_size=256, lr=4e-3, ema_decay=0.995),
    "cnf": dict(steps=250, batch_size=256, lr=3e-3),
    "cnf_hutchinson": dict(steps=250, batch_size=256, lr=3e-3),
    "realnvp": dict(steps=1500, batch_size=256, lr=2e-3),
    "ddpm": dict(steps=3000, batch_size=256, lr=4e-3, ema_decay=0.995),
}


def names() -> list[str]:
    """Registered model names."""
    return list(_REGISTRY)


def model_class(name: str) -> type[GenerativeModel]:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def config_class(name: str) -> type:
    """The config dataclass of a registered model."""
    return model_class(name).Config


def make(name: str, event_shape, **config) -> GenerativeModel:
    """Build the model called `name` for events of shape `event_shape` (e.g. (2,) or (1, 8, 8))."""
    cls, config_cls = model_class(name), config_class(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise TypeError(f"{name} has no config option(s) {', '.join(unknown)}; its options are: "
                        f"{', '.join(sorted(fields))}")
    return cls(tuple(event_shape), config_cls(**config))


def names_2d() -> list[str]:
    """Models with a 2D training recipe (the ones `make bench` trains on the 2D datasets)."""
    return [name for name in _REGISTRY if name in _RECIPES]


def recipe(name: str) -> dict:
    """Keyword arguments for `unigm.train.fit` that train `name` well on 2D data."""
    model_class(name)
    if name not in _RECIPES:
        raise KeyError(f"{name} has no 2D recipe (it is built for images); 2D models: {', '.join(names_2d())}")
    out = dict(_RECIPES[name])
    out["steps"] = runtime.by_profile(quick=out["steps"], full=4 * out["steps"])
    return out
