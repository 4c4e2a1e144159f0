"""One 3x3 convolution layer, forward and backward in bf16: TensorFlow's own against a
patch-matrix product (pad, nine shifted slices, one matmul), on the fast net's shapes.

    python benchmarks/conv_as_matmul.py

The question: is the weight gradient of the small feature maps (slow in oneDNN, see
`onednn_breakdown.py`) cheaper as one large matrix product? Prints ms per forward+backward.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401,I001  (first: turns oneDNN on, as in training)
import tensorflow as tf  # noqa: E402

SHAPES = [(512, 7, 256, 256), (512, 3, 256, 256), (512, 15, 64, 256), (512, 15, 64, 64)]


def native(x, k):
    return tf.nn.conv2d(x, k, 1, "SAME")


def as_matmul(x, k):
    kh, kw, cin, cout = k.shape
    h, w = x.shape[1], x.shape[2]
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    taps = [padded[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)]
    cols = tf.reshape(tf.concat(taps, axis=-1), (-1, kh * kw * cin))
    return tf.reshape(cols @ tf.reshape(k, (kh * kw * cin, cout)), (-1, h, w, cout))


def ms_per_step(conv, x, kernel, repeats=5) -> float:
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x, tf.cast(kernel, tf.bfloat16))
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return tape.gradient(loss, [x, kernel])

    [g.numpy() for g in step(x)]
    start = time.perf_counter()
    for _ in range(repeats):
        grads = step(x)
    [g.numpy() for g in grads]
    return (time.perf_counter() - start) / repeats * 1000


def main():
    for n, side, cin, cout in SHAPES:
        x = tf.cast(tf.random.normal((n, side, side, cin)), tf.bfloat16)
        kernel = tf.Variable(tf.random.normal((3, 3, cin, cout)) * 0.05)
        a, b = ms_per_step(native, x, kernel), ms_per_step(as_matmul, x, kernel)
        print(f"{n}x{side}x{side}, {cin}->{cout}: native {a:.0f} ms, as matmul {b:.0f} ms")


if __name__ == "__main__":
    main()
