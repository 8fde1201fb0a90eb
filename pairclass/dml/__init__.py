"""Deep metric learning on frozen embeddings: a projection head trained with pytorch-metric-learning.

Needs the ``dml`` extra (torch, pytorch-metric-learning, safetensors); ``import pairclass`` does not
import this package.
"""

from .fit import FittedHead, fit_head
from .io import Encoder, load_encoder, save_encoder
from .run import EvaluateResult, TrainResult, run_evaluate_encoder, run_train

__all__ = [
    "Encoder",
    "EvaluateResult",
    "FittedHead",
    "TrainResult",
    "fit_head",
    "load_encoder",
    "run_evaluate_encoder",
    "run_train",
    "save_encoder",
]
