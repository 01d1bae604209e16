"""One trainer for every model: `fit(model, data, steps=..., batch_size=..., lr=...)`.

    loop.py         fit: each step, every player takes a turn (an adversarial model has several)
    hooks.py        Hook and the built-in hooks: EMA, GradientClipping, Callbacks, ProgressBar
    state.py        History (what fit returns) and TrainState (what hooks see)
    batching.py     batches(): the data forms fit accepts (and each rank's share under torchrun)
    resume.py       Checkpointing / Resume: the whole training state, saved and continued exactly
    distributed.py  fit under torchrun: DistributedDataParallel, gloo on CPU, NCCL on GPUs
    lr_schedules.py cosine_lr, constant_lr
    checkpoints.py  save_checkpoint / load_checkpoint: safetensors weights + JSON metadata
    parallel.py     train_many(jobs): several small models at once, one process per core
    queue.py        TrainingQueue(jobs): start training now in the workers, collect the models later
"""
from .batching import batches
from .checkpoints import checkpoint_metadata, load_checkpoint, save_checkpoint
from .hooks import EMA, Callbacks, GradientClipping, Hook, ProgressBar
from .loop import NonFiniteLossError, fit
from .lr_schedules import constant_lr, cosine_lr
from .parallel import Job, train_job, train_many
from .queue import TrainingQueue
from .resume import Checkpointing, Resume
from .state import History, TrainState

__all__ = ["fit", "History", "TrainState", "Hook", "EMA", "GradientClipping", "Callbacks", "ProgressBar",
           "cosine_lr", "constant_lr", "NonFiniteLossError", "batches", "save_checkpoint", "load_checkpoint",
           "checkpoint_metadata", "Checkpointing", "Resume", "Job", "train_job", "train_many", "TrainingQueue"]
