"""Lookahead weight averaging, as in airbench (Keller Jordan's CIFAR-10 speed runs).

Every `every` optimizer steps the model's weights move to an exponential moving average
of themselves, and the average is where training goes on from. The average's decay rises
from 0 to `decay` along the run (cubically, so the early, fast-moving steps are barely
averaged), and the run ends on the average. Unlike Keras's `use_ema`, which averages only
trainable weights, this averages every float weight of the model, batch-norm running
statistics included: averaged kernels with the last step's statistics do not match.
"""

from __future__ import annotations

import keras


class Lookahead(keras.callbacks.Callback):
    """Keras callback: lookahead averaging of all the model's float weights.

    Args:
        total_steps: optimizer steps of the whole run (epochs x steps per epoch).
        every: steps between two averagings (airbench: 5).
        decay: the largest decay of the average, reached at the last step
            (airbench: 0.95 per step, so 0.95**5 per averaging).
    """

    def __init__(self, total_steps: int, every: int = 5, decay: float = 0.95**5):
        super().__init__()
        self.total_steps, self.every, self.decay = max(1, total_steps), every, decay
        self.average: list = []

    def _weights(self):
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def decay_at(self, step: int) -> float:
        return self.decay * min(1.0, step / self.total_steps) ** 3

    def on_train_begin(self, logs=None):
        if not self.average:  # a run in two `fit` calls (small crops first) keeps its average
            self.average = [keras.Variable(w.numpy(), trainable=False) for w in self._weights()]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.total_steps:
            self.update(1.0)  # the run ends on the average, before its last validation
        elif step % self.every == 0:
            self.update(self.decay_at(step))

    def update(self, decay: float) -> None:
        """average <- decay * average + (1 - decay) * weights; weights <- average."""
        for avg, w in zip(self.average, self._weights(), strict=True):
            avg.assign(decay * avg.value + (1.0 - decay) * w.value)
            w.assign(avg.value)
