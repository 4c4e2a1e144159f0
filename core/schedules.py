"""Learning-rate schedules that Keras does not ship, registered so saved models load."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cnn_dashboard")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear rise from `start_factor * peak` to `peak` over `warmup_steps`, then linear
    decay to `end_factor * peak` at `total_steps` (the triangular one-cycle schedule)."""

    def __init__(self, peak, total_steps, warmup_steps, start_factor=0.1, end_factor=0.0):
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.start_factor, self.end_factor = start_factor, end_factor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = max(1, self.warmup_steps)
        rise = self.start_factor + (1 - self.start_factor) * step / warm
        fall_len = max(1, self.total_steps - self.warmup_steps)
        frac = ops.clip((step - self.warmup_steps) / fall_len, 0.0, 1.0)
        fall = 1 + (self.end_factor - 1) * frac
        return self.peak * ops.where(step < self.warmup_steps, rise, fall)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
            "end_factor": self.end_factor,
        }
