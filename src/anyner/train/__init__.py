"""Training GLiNER span models: config, data mix, loss and the resumable loop."""

from anyner.train.config import TrainConfig, load_train_config
from anyner.train.loop import Trainer, train

__all__ = ["TrainConfig", "Trainer", "load_train_config", "train"]
