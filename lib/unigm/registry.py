"""The model registry and training recipes.

A model registers itself with a decorator on its class, in its own file:

    @register("ddpm", recipes={"2d": Recipe(steps=3000, lr=4e-3, ema_decay=0.995,
                                            min_quality={"two_moons": 0.85, "eight_gaussians": 0.85})})
    class DDPM(ScoreBased): ...

so adding a model is one file (plus its test). `unigm.zoo` is the public face: names(), make(),
recipe(). A Recipe is how to train one model on one task; the profile (quick / full) is
applied to it here and nowhere else. Its `min_quality` is the model's quality gate on that
task: the minimum fraction of the W2 gap closed (G, unigm.metrics) per dataset, asserted by
tests/test_quality.py and read by the lectures: one table of thresholds, no copies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import runtime

FULL_PROFILE_STEP_FACTOR = 4  # the full profile trains every recipe four times longer

TASKS = ("2d", "signal")  # 2d: the 2D toy data sets of unigm.data (two_moons, eight_gaussians, ...);
# signal: mu-law codes of the 1D signals of unigm.data.sine_mixtures (length 128, 64 levels)


@dataclass(frozen=True)
class Recipe:
    """Keyword arguments for unigm.train.fit (quick-profile steps) and the quality gate they pass."""

    steps: int
    lr: float
    batch_size: int = 256
    ema_decay: float | None = None
    min_quality: dict[str, float] = field(default_factory=dict)  # dataset -> minimum G

    def fit_kwargs(self, steps: int | None = None) -> dict:
        """What to pass to fit(): the profile's step count (or `steps`), lr, batch size, EMA."""
        if steps is None:
            steps = runtime.by_profile(quick=self.steps, full=FULL_PROFILE_STEP_FACTOR * self.steps)
        out = dict(steps=steps, batch_size=self.batch_size, lr=self.lr)
        if self.ema_decay is not None:
            out["ema_decay"] = self.ema_decay
        return out


MODELS: dict[str, type] = {}
RECIPES: dict[str, dict[str, Recipe]] = {}  # model name -> task -> recipe


def register(name: str, recipes: dict[str, Recipe] | None = None):
    """Class decorator: register a model under `name` (also set as cls.name) with its recipes."""

    def decorate(cls):
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {MODELS[name].__qualname__}")
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__qualname__} needs a Config dataclass to be registered")
        unknown = set(recipes or {}) - set(TASKS)
        if unknown:
            raise ValueError(f"{name}: unknown task(s) {sorted(unknown)}; tasks are {', '.join(TASKS)}")
        cls.name = name
        MODELS[name] = cls
        RECIPES[name] = dict(recipes or {})
        return cls

    return decorate
