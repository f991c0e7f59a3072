"""Training engine: the Trainer and its public steps, fit, callbacks, optimisers, checkpoints,
devices and the LR range test. No MLflow, no Optuna."""

from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.engine.device import as_device, resolve_device
from cnnexp.engine.loop import FitResult, fit
from cnnexp.engine.trainer import Trainer

__all__ = ["Callback", "FitResult", "FitState", "Trainer", "as_device", "fit", "resolve_device"]
