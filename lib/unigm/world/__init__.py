"""World models: predict what happens next, given what the agent does.

    env.py         a toy environment (an agent moved by actions, a bouncing ball it cannot move)
    next_frame.py  NextFrame, an action-conditioned next-frame model, its rollouts and their errors
    jepa.py        JEPA (Assran et al. 2023): predict the embeddings of hidden image blocks, not pixels
    vjepa.py       V-JEPA (Bardes et al. 2024): the same on clips, hiding space-time tubes
"""
from . import env
from .jepa import (JEPA, JEPAConfig, SharedTargetJEPA, block_masks, effective_rank, embedding_std, few_label_probe,
                   linear_probe)
from .next_frame import FiLMBlock, NextFrame, NextFrameConfig, copy_last_frame, rollout_errors

__all__ = ["FiLMBlock", "NextFrame", "NextFrameConfig", "copy_last_frame", "env", "rollout_errors"]
__all__ += ["JEPA", "JEPAConfig", "SharedTargetJEPA", "block_masks", "effective_rank", "embedding_std",
            "few_label_probe", "linear_probe"]
from .vjepa import VJEPA, VJEPAConfig, ball_labels, ridge_probe, space_time_masks  # noqa: E402

__all__ += ["VJEPA", "VJEPAConfig", "ball_labels", "ridge_probe", "space_time_masks"]
from .transfusion import Transfusion, TransfusionConfig, detokenize, tokenize, transfusion_mask  # noqa: E402

__all__ += ["Transfusion", "TransfusionConfig", "detokenize", "tokenize", "transfusion_mask"]
