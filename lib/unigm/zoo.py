"""The model zoo: `names()`, `make(name, event_shape, **config)`, `recipe(name)`.

Models register themselves with `unigm.registry.register` in their own files; importing the
family packages here fills the registry. `make("ddpm", (2,), hidden=128)` builds
DDPM(event_shape=(2,), config=DDPMConfig(hidden=128)).
"""
from __future__ import annotations

import dataclasses

from . import autoregressive, diffusion, flows, gan, vae, world  # noqa: F401  (registers every model)
from .base import GenerativeModel
from .registry import MODELS, RECIPES, Recipe


def names() -> list[str]:
    """Registered model names."""
    return list(MODELS)


def model_class(name: str) -> type[GenerativeModel]:
    if not isinstance(name, str) or name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(MODELS)}")
    return MODELS[name]


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
    return [name for name in MODELS if "2d" in RECIPES[name]]


def recipe(name: str, task: str = "2d") -> Recipe:
    """How to train `name` on `task`: pass `**recipe(name).fit_kwargs()` to unigm.train.fit."""
    model_class(name)
    if task not in RECIPES[name]:
        raise KeyError(f"{name} has no {task} recipe; models with one: "
                       f"{', '.join(n for n in MODELS if task in RECIPES[n])}")
    return RECIPES[name][task]


def quality_gates(task: str = "2d") -> dict[tuple[str, str], float]:
    """The thresholds table: (model, dataset) -> minimum G, from every recipe of `task`."""
    return {(name, dataset): threshold for name in MODELS if task in RECIPES[name]
            for dataset, threshold in RECIPES[name][task].min_quality.items()}
