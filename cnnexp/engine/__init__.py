"""Training engine: fit, callbacks, optimisers. No MLflow, no Optuna."""

from cnnexp.engine.callbacks import Callback, FitState
from cnnexp.engine.loop import FitResult, Trainer, fit

__all__ = ["Callback", "FitResult", "FitState", "Trainer", "fit"]
