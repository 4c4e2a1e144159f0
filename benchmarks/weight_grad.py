"""Weight gradient of a 3x3 "same" convolution: oneDNN's kernel against matrix products.

    python benchmarks/weight_grad.py [--batch 512] [--dtype bfloat16]

For each conv shape of the fast net, times (median of 5, after one warm-up call):
the forward pass, TensorFlow's `Conv2DBackpropFilter` (oneDNN), and the same sums as one
matrix product per kernel tap over shifted views of the padded input, the way
`core.model.SmallMapConv2D` computes it. Also prints the largest difference between the
two gradients relative to the largest gradient.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401,I001  (first: turns oneDNN on, as in training)
import tensorflow as tf  # noqa: E402

SHAPES = [(7, 256, 256), (3, 256, 256), (15, 64, 256), (15, 64, 64), (31, 24, 64)]


def _ms(fn, *args, runs=5):
    fn(*args)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(*args).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = p.parse_args()
    dtype = getattr(tf, args.dtype)
    print(f"batch {args.batch}, {args.dtype}; milliseconds per call")
    for size, cin, cout in SHAPES:
        x = tf.cast(tf.random.normal((args.batch, size, size, cin)), dtype)
        dy = tf.cast(tf.random.normal((args.batch, size, size, cout)), dtype)
        w = tf.cast(tf.random.normal((3, 3, cin, cout)), dtype)

        @tf.function
        def forward(x, w):
            return tf.nn.conv2d(x, w, 1, "SAME")

        @tf.function
        def onednn(x, dy, cin=cin, cout=cout):
            return tf.raw_ops.Conv2DBackpropFilter(
                input=x,
                filter_sizes=[3, 3, cin, cout],
                out_backprop=dy,
                strides=[1, 1, 1, 1],
                padding="SAME",
            )

        @tf.function
        def matmuls(x, dy, size=size, cin=cin, cout=cout):
            padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
            grads = tf.reshape(dy, (-1, cout))
            taps = [
                tf.matmul(
                    tf.reshape(padded[:, i : i + size, j : j + size, :], (-1, cin)),
                    grads,
                    transpose_a=True,
                )
                for i in range(3)
                for j in range(3)
            ]
            return tf.reshape(tf.stack(taps), (3, 3, cin, cout))

        a = tf.cast(onednn(x, dy), tf.float32)
        b = tf.cast(matmuls(x, dy), tf.float32)
        err = float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
        t_onednn, t_matmuls = _ms(onednn, x, dy), _ms(matmuls, x, dy)
        print(
            f"{size}x{size}, {cin} -> {cout}: forward {_ms(forward, x, w):.0f}, weight gradient "
            f"oneDNN {t_onednn:.0f}, 9 matmuls {t_matmuls:.0f} ({t_onednn / t_matmuls:.1f}x), "
            f"relative difference {err:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
