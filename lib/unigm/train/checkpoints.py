"""Checkpoints: safetensors weights + JSON metadata (zoo name, event shape, config, provenance)."""
from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch

from ..base import GenerativeModel


def save_checkpoint(model: GenerativeModel, path: str | Path, **provenance) -> Path:
    """Save weights with safetensors and enough metadata to rebuild the model with the zoo.

    Put the provenance in the keyword arguments: script, seed, steps, metrics, ..."""
    from safetensors.torch import save_model

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoints are safetensors files; name it *.safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = asdict(model.config) if is_dataclass(model.config) else {}
    meta = {"name": model.name, "event_shape": list(model.event_shape), "config": config,
            "provenance": provenance, "torch": torch.__version__}
    save_model(model, str(path), metadata={"unigm": json.dumps(meta, default=str)})
    return path


def checkpoint_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("unigm")
    if raw is None:
        raise ValueError(f"{path} has no unigm metadata; it was not written by save_checkpoint")
    return json.loads(raw)


def load_checkpoint(path: str | Path, model: GenerativeModel | None = None) -> GenerativeModel:
    """Load a checkpoint. Without `model`, rebuild it from the metadata through the zoo.

    .safetensors files hold tensors only, so loading cannot run code; a plain PyTorch state
    dict (.pt) is read with torch.load(weights_only=True) for the same reason."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".pt":
        if model is None:
            raise ValueError("a .pt state dict carries no metadata; pass the model to load it into")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    from safetensors.torch import load_model

    if model is None:
        from .. import zoo

        meta = checkpoint_metadata(path)
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}  # JSON has no tuples
        model = zoo.make(meta["name"], tuple(meta["event_shape"]), **config)
    load_model(model, str(path), device=str(model.device))
    return model.eval()
