"""Optimizers that Keras does not ship, registered so checkpoints load and resume.

`Muon` is the optimizer of airbench's newest CIFAR-10 speed run (Keller Jordan's
airbench94_muon: 94% in 8 epochs where Nesterov SGD needs about 10). Keras 3 has a
`keras.optimizers.Muon`, but it orthogonalises 2-D weights only and gives every other
variable, conv kernels included, AdamW.
"""

from __future__ import annotations

import keras
from keras import ops

# Newton-Schulz quintic coefficients (Keller Jordan's): they push every singular value of
# the normalised matrix towards 1 in a few steps (to between about 0.5 and 1.5, which
# trains as well as exactly 1).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
# A conv kernel's step over the learning rate: airbench's 0.24 against 1.66 for the
# batch-norm shifts (its 0.053 per summed loss at batch 2,000, in Keras's mean-loss units
# and divided by the 64 that core.model.ScaledBias multiplies a shift's rate by).
KERNEL_RATIO = 0.145


def orthogonalize(g, steps: int = 3, eps: float = 1e-7):
    """Returns about `U V^T` for the SVD `g = U S V^T` of a 2-D matrix (Newton-Schulz)."""
    a, b, c = NS_COEFFICIENTS
    tall = g.shape[0] > g.shape[1]
    x = ops.transpose(g) if tall else g  # iterate on the small Gram matrix
    x = x / (ops.sqrt(ops.sum(ops.square(x))) + eps)  # all singular values at most 1
    for _ in range(steps):
        gram = ops.matmul(x, ops.transpose(x))
        x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
    return ops.transpose(x) if tall else x


@keras.saving.register_keras_serializable(package="cnn_lab")
class Muon(keras.optimizers.SGD):
    """Nesterov SGD, except for conv kernels, which take Muon steps.

    A conv kernel `(kh, kw, in, out)` is first rescaled to the Frobenius norm `sqrt(out)`
    (a fixed norm: batch norm follows it, so only its direction matters, and no weight
    decay is needed on it); then it moves by `kernel_ratio x learning_rate` times the
    orthogonalised Nesterov momentum of its gradient, seen as an `(kh kw in) x out`
    matrix: every direction of the update gets about the same step, whatever the
    gradient's scale. Every other trainable variable (batch-norm shifts, the classifier,
    biases) takes plain Nesterov SGD steps with decoupled weight decay.

    Args:
        learning_rate: the SGD rate, a float or a schedule; kernels follow its schedule.
        momentum: SGD's momentum.
        kernel_ratio: a kernel's step over the SGD rate.
        kernel_momentum: the kernels' momentum (airbench: 0.6).
        ns_steps: Newton-Schulz iterations (airbench: 3).
        weight_decay: decoupled, for the SGD variables only.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.85,
        kernel_ratio=KERNEL_RATIO,
        kernel_momentum=0.6,
        ns_steps=3,
        weight_decay=None,
        name="muon",
        **kwargs,
    ):
        kwargs.pop("nesterov", None)  # always Nesterov; get_config writes it
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=True,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        self.kernel_ratio = float(kernel_ratio)
        self.kernel_momentum = float(kernel_momentum)
        self.ns_steps = int(ns_steps)

    @staticmethod
    def is_kernel(variable) -> bool:
        return len(variable.shape) == 4

    def _use_weight_decay(self, variable):
        return not self.is_kernel(variable) and super()._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        if not self.is_kernel(variable):
            return super().update_step(gradient, variable, learning_rate)
        buf = self.momentums[self._get_variable_index(variable)]
        gradient = ops.cast(gradient, variable.dtype)
        m = ops.cast(self.kernel_momentum, variable.dtype)
        self.assign(buf, m * buf + gradient)
        step = gradient + m * buf  # Nesterov
        shape = variable.shape  # (kh, kw, in, out): a row per tap and input channel
        update = orthogonalize(ops.reshape(step, (-1, shape[-1])), self.ns_steps)
        update = ops.reshape(update, shape)
        w = ops.convert_to_tensor(variable)
        w = w * (float(shape[-1]) ** 0.5 / (ops.sqrt(ops.sum(ops.square(w))) + 1e-12))
        lr = ops.cast(learning_rate, variable.dtype) * self.kernel_ratio
        self.assign(variable, w - lr * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_ratio=self.kernel_ratio,
            kernel_momentum=self.kernel_momentum,
            ns_steps=self.ns_steps,
        )
        return config
