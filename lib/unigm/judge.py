"""The judge: the course's own classifier, whose features and class probabilities the image metrics use.

FID-style metrics need a feature space (Heusel et al. 2017 use Inception-v3's pool layer). Offline
on a 2-core CPU we train our own: a small MLP on the 8x8 digits, fitted on the train split only,
deterministically (every random draw comes from one seeded torch.Generator), in about a second.
It is cached on disk, keyed by a SHA-256 of its config and its training data, and reloaded with
safetensors (tensors only: loading runs no code). A file whose weights do not match the hash
recorded in it is retrained, with a warning.

Accepted images (anything else raises a ShapeError or ValueError saying what is wrong):
- shape (N, 1, 8, 8) for "digits", a torch.Tensor;
- floating point: values in [0, 1], the dequantized format x = (v + u) / levels of
  `data.dequantize` that the course's image models are trained on and sample in; clamp model
  samples that overshoot with `x.clamp(0, 1)` first;
- integer dtype (what `data.digits().images` holds): grey levels v in 0..levels-1, mapped to the
  centre of their dequantization bin, x = (v + 0.5) / levels.

    judge = load("digits")
    judge.test_accuracy            # measured on the test split at load time
    judge.features(x)              # (N, feature_dim), the penultimate layer
    judge.predict_proba(x)         # (N, 10)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import data
from .tensors import ShapeError

FORMAT_VERSION = 1  # bump when the network or training code changes: old cache files are then ignored


@dataclass(frozen=True)
class JudgeConfig:
    """The judge's architecture and training run; all of it goes into the cache key."""

    hidden: tuple[int, ...] = (256, 128)  # the last width is the feature dimension
    steps: int = 600
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    image_shape: tuple[int, int, int]
    levels: int
    num_classes: int
    split: Callable[[str], data.ImageSplit]  # "train" / "test" -> the images and labels


DATASETS = {"digits": DatasetSpec("digits", (1, 8, 8), data.DIGIT_LEVELS, 10, data.digits),
            # the full profile (UNIGM_PROFILE=full): the MNIST IDX files in data.data_home() / "mnist"; nothing is
            # downloaded here, and a missing file raises data.mnist's FileNotFoundError saying how to get it
            "mnist": DatasetSpec("mnist", (1, 28, 28), 256, 10, lambda split: data.mnist(split))}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"no judge for dataset {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[name]


def cache_dir() -> Path:
    """Where judges are cached: $UNIGM_CACHE, else ~/.cache/unigm."""
    return Path(os.environ.get("UNIGM_CACHE", Path.home() / ".cache" / "unigm"))


# ------------------------------------------------------------------------------------------------
# The network and its deterministic training
# ------------------------------------------------------------------------------------------------
def build_net(spec: DatasetSpec, config: JudgeConfig) -> nn.Sequential:
    """Flatten -> [Linear, ReLU] per hidden width -> Linear to the classes."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(spec.image_shape)
    for hidden in config.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


def _init_(net: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from `generator`
    instead of the global RNG."""
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, nn.Linear):
                bound = 1 / math.sqrt(layer.in_features)
                for p in (layer.weight, layer.bias):
                    p.copy_((2 * torch.rand(p.shape, generator=generator) - 1) * bound)


def _train_net(spec: DatasetSpec, config: JudgeConfig) -> nn.Sequential:
    """Adam on cross-entropy, minibatches of freshly dequantized train images (Theis et al. 2016),
    so that the judge sees the same continuous inputs the models produce."""
    train = spec.split("train")
    g = torch.Generator().manual_seed(config.seed)
    net = build_net(spec, config)
    _init_(net, g)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for _ in range(config.steps):
        index = torch.randint(len(train), (config.batch_size,), generator=g)
        x = data.dequantize(train.images[index], spec.levels, g)
        loss = nn.functional.cross_entropy(net(x), train.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return net.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------
# The judge object
# ------------------------------------------------------------------------------------------------
class Judge:
    """A trained classifier for one dataset: `features`, `predict_proba`, `test_accuracy`."""

    def __init__(self, spec: DatasetSpec, config: JudgeConfig, net: nn.Sequential, path: Path | None = None):
        self.spec, self.config, self.net, self.path = spec, config, net.eval().requires_grad_(False), path
        self.feature_dim = config.hidden[-1]
        test = spec.split("test")
        self.test_accuracy = float((self.predict_proba(test.images).argmax(1) == test.labels).double().mean())

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check x against the accepted format (module docstring) and return float32 in [0, 1]."""
        name, shape, levels = self.spec.name, self.spec.image_shape, self.spec.levels
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"the {name} judge expects a torch.Tensor of shape (N, {', '.join(map(str, shape))}), "
                             f"got {type(x).__name__}")
        if x.dim() != 1 + len(shape) or tuple(x.shape[1:]) != shape or len(x) == 0:
            hint = " (add the channel axis: x.unsqueeze(1))" if tuple(x.shape[1:]) == shape[1:] else ""
            raise ShapeError(f"the {name} judge expects images of shape (N, {', '.join(map(str, shape))}) with N >= 1, "
                             f"got {tuple(x.shape)}{hint}")
        x = x.detach().cpu()
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"the {name} judge expects float images in [0, 1] or integer grey levels, got {x.dtype}")
        if not x.dtype.is_floating_point:
            if x.min() < 0 or x.max() > levels - 1:
                raise ValueError(f"integer images are grey levels 0..{levels - 1}; got values in "
                                 f"[{int(x.min())}, {int(x.max())}]")
            return (x.float() + 0.5) / levels  # centre of the dequantization bin
        if not torch.isfinite(x).all():
            raise ValueError("images contain NaN or inf; the model has diverged")
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            if high > 1.5:
                hint = f"; these look like grey levels: pass integers, or divide by {levels}"
            elif low < -0.5:
                hint = "; map data in [-1, 1] back with (x + 1) / 2"
            else:
                hint = "; clamp model samples with x.clamp(0, 1)"
            raise ValueError(f"float images must lie in [0, 1] (x = (v + u) / {levels}, see data.dequantize), "
                             f"got values in [{low:.3g}, {high:.3g}]{hint}")
        return x.float()

    def _forward(self, x: torch.Tensor, layers: nn.Sequential) -> torch.Tensor:
        x = self.prepare(x)
        return torch.cat([layers(chunk) for chunk in x.split(4096)])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (after its ReLU): (N, feature_dim), the space of the image metrics."""
        return self._forward(x, self.net[:-1])

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x): (N, num_classes), rows sum to 1."""
        return self._forward(x, self.net).softmax(dim=1)

    def __repr__(self) -> str:
        return (f"Judge({self.spec.name!r}, hidden={self.config.hidden}, "
                f"test_accuracy={self.test_accuracy:.4f})")


# ------------------------------------------------------------------------------------------------
# Cache on disk: safetensors, keyed by a hash of config + data, verified on load
# ------------------------------------------------------------------------------------------------
def cache_key(name: str, config: JudgeConfig) -> str:
    """SHA-256 of the format version, the config and the training images and labels."""
    train = dataset_spec(name).split("train")
    h = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, "dataset": name, "config": asdict(config)},
                                  sort_keys=True).encode())
    h.update(train.images.contiguous().numpy().tobytes())
    h.update(train.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_path(name: str = "digits", config: JudgeConfig = JudgeConfig(), directory: Path | None = None) -> Path:
    return Path(directory or cache_dir()) / f"judge-{name}-{cache_key(name, config)[:16]}.safetensors"


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _save(net: nn.Module, path: Path, name: str, config: JudgeConfig) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    meta = {"dataset": name, "config": json.dumps(asdict(config)), "key": cache_key(name, config),
            "weights_sha256": weights_sha256(state), "format": str(FORMAT_VERSION)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read(path: Path, spec: DatasetSpec, config: JudgeConfig) -> nn.Sequential:
    """Load and verify a cache file; raise ValueError if it is damaged or belongs to another key."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several types for a damaged header or body
        raise ValueError(f"unreadable safetensors file ({err})") from err
    if meta.get("key") != cache_key(spec.name, config):
        raise ValueError("the file belongs to another config or data set")
    if meta.get("weights_sha256") != weights_sha256(state):
        raise ValueError("the weights do not match the SHA-256 recorded with them")
    net = build_net(spec, config)
    net.load_state_dict(state)
    return net


def train(name: str = "digits", config: JudgeConfig = JudgeConfig()) -> Judge:
    """Train a judge from scratch (no cache). Two calls give bit-identical weights."""
    spec = dataset_spec(name)
    return Judge(spec, config, _train_net(spec, config))


_LOADED: dict[tuple[str, JudgeConfig, Path], Judge] = {}


def load(name: str = "digits", config: JudgeConfig = JudgeConfig(), directory: str | Path | None = None) -> Judge:
    """The judge for `name`: from memory, else from the disk cache, else trained and cached.

    A damaged or mismatching cache file is reported with a warning and replaced by a retrained judge."""
    spec = dataset_spec(name)
    path = cache_path(name, config, Path(directory) if directory else None)
    memo = (name, config, path)
    if memo in _LOADED:
        return _LOADED[memo]
    net = None
    if path.exists():
        try:
            net = _read(path, spec, config)
        except ValueError as err:
            warnings.warn(f"judge cache {path} is damaged ({err}); retraining it", RuntimeWarning, stacklevel=2)
    if net is None:
        net = _train_net(spec, config)
        try:
            _save(net, path, name, config)
        except OSError as err:  # a read-only home: the judge still works, it is just not kept
            warnings.warn(f"could not cache the judge at {path} ({err}); set $UNIGM_CACHE to a writable folder",
                          RuntimeWarning, stacklevel=2)
    judge = Judge(spec, config, net, path)
    _LOADED[memo] = judge
    return judge


def clear_memory() -> None:
    """Forget the judges loaded in this process (the disk cache stays)."""
    _LOADED.clear()
