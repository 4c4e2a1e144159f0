"""How small a change to a picture changes the model's answer: adversarial examples.

A projected gradient attack (Madry et al., 2018, on the fast gradient sign method of
Goodfellow et al., 2015): the gradient of the model's scores with respect to the pixels says
which way to nudge each pixel to move the answer away from a class; each step nudges every
pixel by a whole number of levels that way, and no pixel ever moves more than `epsilon`
levels (of 255) from the original. Every step's picture is a valid uint8 image, so what is
found can be saved as a PNG and uploaded again: it fools the model as a file too.

The attack maximises the margin of the best other class's score over the class's own (or,
aimed at a class, the class's over the best other one's), on the scores before the softmax
(`logits_of`): a confident model's probabilities saturate, and their gradient with them.
An image stops moving the step its answer changes, so each picture found is the first one
the search reached, with no more change than it needed at that `epsilon`.

`smallest_change` tries a ladder of epsilons, smallest first, and attacks only the images
not yet fooled; an image fooled at one epsilon is inside every larger one's bounds, so
"accuracy with changes of at most epsilon" follows from it for every rung at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
from keras import layers, ops

EPSILONS = (1, 2, 4, 8, 16)  # levels of 255 each pixel may move: the ladder tried
STEPS = 10  # gradient steps at each epsilon


class Attack(NamedTuple):
    images: np.ndarray  # uint8 (N, S, S, 3): changed by the smallest epsilon that fooled
    epsilon: np.ndarray  # float (N,): that epsilon; 0 already wrong; inf not fooled


class Fooled(NamedTuple):
    image: np.ndarray  # uint8 (S, S, 3), or (S, V * S, 3) for V squares: the changed picture
    epsilon: float  # levels of 255 it needed; inf when no rung of the ladder fooled it
    class_before: int
    class_after: int
    before: np.ndarray  # float32 (C,) probabilities of the original
    after: np.ndarray  # float32 (C,) probabilities of the changed picture


def step_size(epsilon: int) -> int:
    """Levels each step moves a pixel: a quarter of the bound, at least one level, so ten
    steps can cross the whole range between the bounds and back."""
    return max(1, int(round(epsilon / 4)))


def logits_of(model: keras.Model) -> Callable:
    """A function from float32 pixels `(N, S, S, 3)` to the model's scores before the
    softmax: its last `Dense` layer's logits where it ends in a softmax `Dense`, the input
    of its softmax where that is a layer of its own (the speed presets), otherwise the log
    of its probabilities."""
    from core.inspect import softmax_head

    head = softmax_head(model)
    if head is not None:
        body = keras.Model(model.input, head.input)
        return lambda x: ops.matmul(body(x, training=False), head.kernel) + head.bias
    last = model.layers[-1]
    if isinstance(last, layers.Softmax) or (
        isinstance(last, layers.Activation)
        and getattr(last.activation, "__name__", "") == "softmax"
    ):
        body = keras.Model(model.input, last.input)
        return lambda x: body(x, training=False)
    return lambda x: ops.log(ops.maximum(model(x, training=False), 1e-30))


def _margin_function(model: keras.Model) -> Callable:
    """`(pixels, classes) -> (margins, gradient)`: per image, the best other class's score
    minus the class's own (positive: fooled), and the gradient of their sum with respect
    to the pixels. Traced once per model and kept on it: compiled, the search for one photo
    of the shipped model took 75-78 ms at the median against 606 ms with an eager tape
    (docs/BENCHMARKS.md, session 29)."""
    from core.inspect import kept_on_model

    return kept_on_model(model, "margins", lambda: _compiled_margins(model))


def _compiled_margins(model: keras.Model) -> Callable:
    import tensorflow as tf  # the project runs Keras on TensorFlow; gradients need a tape

    logits = logits_of(model)
    pixels = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[pixels, tf.TensorSpec((None,), tf.int32)])
    def margins(x, classes):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = logits(x)
            own = tf.gather(z, classes, batch_dims=1)
            others = tf.where(tf.one_hot(classes, tf.shape(z)[-1]) > 0, -np.inf, z)
            margin = tf.reduce_max(others, axis=-1) - own
            total = tf.reduce_sum(margin)
        return margin, tape.gradient(total, x)

    return margins


def attack(
    model: keras.Model,
    images: np.ndarray,
    classes: np.ndarray,
    epsilon: int,
    steps: int = STEPS,
    targeted: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Searches, for each image, a picture within `epsilon` levels of it in every pixel that
    the model does not answer with the image's class (`targeted`: that it answers with it).

    Args:
        model: the model; it takes uint8 pixels as float32.
        images: uint8 `(N, S, S, 3)` at the model's input size.
        classes: int `(N,)`: the class to move each answer away from, or (`targeted`) to.
        epsilon: a positive whole number of levels of 255.
        steps: gradient steps; each image stops at the first one that fools the model.
        targeted: aim at `classes`: the class's score over the best other one's is the
            untargeted margin turned round, so the same compiled step serves both.

    Returns:
        `(changed, fooled)`: uint8 `(N, S, S, 3)` and bool `(N,)`. An image not fooled is
        the last step's picture.
    """
    margins = _margin_function(model)
    sign = -1.0 if targeted else 1.0
    classes = np.asarray(classes, np.int32)
    original = np.asarray(images, np.float32)
    low, high = np.maximum(original - epsilon, 0), np.minimum(original + epsilon, 255)
    x = original.copy()
    alpha = step_size(epsilon)
    fooled = np.zeros(len(x), bool)
    for step in range(steps + 1):
        margin, grad = margins(x, classes)
        fooled |= sign * margin.numpy() > 0
        if step == steps or fooled.all():
            break
        move = alpha * np.sign(sign * grad.numpy()) * ~fooled[:, None, None, None]
        x = np.clip(x + move, low, high)
    return x.astype(np.uint8), fooled


def smallest_change(
    model: keras.Model,
    images: np.ndarray,
    classes: np.ndarray,
    epsilons: tuple[int, ...] = EPSILONS,
    steps: int = STEPS,
    batch_size: int = 128,
    progress: Callable[[int, int], None] | None = None,
    targeted: bool = False,
    answers: np.ndarray | None = None,
) -> Attack:
    """For each image, the smallest epsilon of the ladder at which `attack` changes the
    model's answer away from its class (`targeted`: to it), and the picture that did it.

    Args:
        model: the model.
        images: uint8 `(N, S, S, 3)` at the model's input size.
        classes: int `(N,)`: the labels, or the model's own answers; `targeted`, the
            classes to reach.
        epsilons: ascending whole numbers of levels.
        steps: gradient steps at each epsilon.
        batch_size: images per gradient pass.
        progress: called with `(done, total)` after each batch of each rung; `total`
            counts a batch of every image at every rung, so the bar ends early when most
            images fall at the first ones.
        targeted: aim at `classes` rather than away from them.
        answers: the model's answers for `images` when the caller has them (they are
            predicted otherwise).

    Returns:
        An `Attack`: the changed images (unchanged where not fooled or already wrong) and
        each one's epsilon (0 where the model already answers another class, or the
        target; inf where no epsilon fooled it).
    """
    from core.evaluate import predict_probs

    images = np.asarray(images, np.uint8)
    classes = np.asarray(classes, np.int64)
    changed = images.copy()
    needed = np.full(len(images), np.inf)
    if answers is None:
        answers = predict_probs(model, images).argmax(-1)
    needed[(answers == classes) if targeted else (answers != classes)] = 0
    per_rung = -(-len(images) // batch_size)
    total, done = per_rung * len(epsilons), 0
    for epsilon in epsilons:
        left = np.flatnonzero(np.isinf(needed))
        for start in range(0, len(left), batch_size):
            rows = left[start : start + batch_size]
            found, fooled = attack(model, images[rows], classes[rows], epsilon, steps, targeted)
            changed[rows[fooled]] = found[fooled]
            needed[rows[fooled]] = epsilon
            done += 1
            if progress:
                progress(done, total)
        done = per_rung * (epsilons.index(epsilon) + 1)
    if progress:
        progress(total, total)
    return Attack(changed, needed)


def fool(
    model: keras.Model, image: np.ndarray, temperature: float = 1.0, target: int | None = None
) -> Fooled:
    """`smallest_change` for one picture, away from the model's own answer or to `target`.

    Args:
        model: the model.
        image: uint8 `(H, W, 3)`; resized to the model's input size if it differs.
        temperature: probabilities are reported after it, as the pages show them.
        target: a class to make the model answer; None: any other than its own.

    Raises:
        ValueError: `target` is not a class of the model.
    """
    from core.inspect import model_image

    return _fooled(model, model_image(model, image), temperature, target)


def fool_views(
    model: keras.Model, views: np.ndarray, temperature: float = 1.0, target: int | None = None
) -> Fooled:
    """`fool` for a photo read as several squares whose probabilities are averaged
    (`core.images.decode_views`, "three"): the smallest change to the squares that changes
    the answer of their average.

    Args:
        views: uint8 `(V, S, S, 3)` at the model's input size.

    Returns:
        A `Fooled` whose `image` is the squares side by side, uint8 `(S, V * S, 3)`: a
        picture that three squares (`core.images.three_squares`) read as these squares
        again, so it fools the model as a file too.
    """
    strip = np.concatenate(list(np.asarray(views, np.uint8)), axis=1)
    return _fooled(squares_model(model, len(views)), strip, temperature, target)


def squares_model(model: keras.Model, count: int) -> keras.Model:
    """`model` for `count` squares side by side, `(N, S, count * S, 3)`: the mean of its
    probabilities for each square. Kept on `model` (built and traced once)."""
    from core.inspect import kept_on_model

    def make():
        size = int(model.input_shape[1])
        strip = keras.Input((size, count * size, 3))
        answers = [
            model(layers.Cropping2D(((0, 0), (i * size, (count - 1 - i) * size)))(strip))
            for i in range(count)
        ]
        return keras.Model(strip, layers.Average()(answers))

    return kept_on_model(model, ("squares", count), make)


def _fooled(model: keras.Model, pixels: np.ndarray, temperature: float, target) -> Fooled:
    from core.classify import predict_pixels
    from core.evaluate import with_temperature

    before = with_temperature(predict_pixels(model, pixels[None]), temperature)[0]
    own = int(before.argmax())
    if target is not None and not 0 <= target < len(before):
        raise ValueError(f"Class {target} is not one of {len(before)} classes.")
    aim = own if target is None else target
    found = smallest_change(
        model, pixels[None], np.array([aim]), targeted=target is not None, answers=np.array([own])
    )
    after = with_temperature(predict_pixels(model, found.images), temperature)[0]
    return Fooled(found.images[0], float(found.epsilon[0]), own, int(after.argmax()), before, after)


def robustness(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    epsilons: tuple[int, ...] = EPSILONS,
    steps: int = STEPS,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Accuracy on `images` when every pixel may change by at most each epsilon: changed by
    the attack, and, for comparison, by random noise of the same size (each pixel up or
    down `epsilon` levels at random).

    Returns:
        `{"epsilons", "attacked", "noise", "needed"}` of arrays: the epsilons with 0 first,
        the accuracies at each (at 0, the plain accuracy), and each image's smallest
        fooling epsilon (`smallest_change`: 0 already wrong, inf not fooled).
    """
    from core.evaluate import predict_probs

    images = np.asarray(images, np.uint8)
    labels = np.asarray(labels, np.int64)
    found = smallest_change(model, images, labels, epsilons, steps, batch_size, progress)
    rng = np.random.default_rng(seed)
    noise = [float(np.mean(found.epsilon > 0))]
    for epsilon in epsilons:
        signs = rng.choice(np.array([-1, 1], np.int16), images.shape)
        noisy = np.clip(images + epsilon * signs, 0, 255).astype(np.uint8)
        noise.append(float(np.mean(predict_probs(model, noisy).argmax(-1) == labels)))
    shown = np.array([0, *epsilons])
    return {
        "epsilons": shown,
        "attacked": np.array([np.mean(found.epsilon > e) for e in shown], np.float64),
        "noise": np.array(noise, np.float64),
        "needed": found.epsilon,
    }


def perturbed_batch(model: keras.Model, x, y, epsilon: float):
    """A training batch moved against the model: the fast gradient sign method from a
    random start (Wong, Rice and Kolter, "Fast is better than free", 2020). Each pixel
    starts a uniform random distance of up to `epsilon` levels from its value, takes one
    step of 1.25 `epsilon` the way that raises the loss, and is put back within `epsilon`
    of its value and within 0..255. One extra forward and backward pass a batch; the
    attack reads the model in inference mode, so batch norm's running statistics and
    dropout see only the training pass.

    Args:
        model: the model being trained.
        x: float32 tensor `(N, S, S, 3)` of pixels in 0..255 (augmented).
        y: float32 `(N, C)` targets (one-hot, or soft).
        epsilon: levels of 255.

    Returns:
        float32 tensor like `x`.
    """
    import tensorflow as tf

    delta = tf.random.uniform(tf.shape(x), -epsilon, epsilon)
    start = tf.clip_by_value(x + delta, 0.0, 255.0)
    with tf.GradientTape() as tape:
        tape.watch(start)
        probs = tf.cast(model(start, training=False), tf.float32)
        loss = tf.reduce_sum(keras.losses.categorical_crossentropy(y, probs))
    step = 1.25 * epsilon * tf.sign(tape.gradient(loss, start))
    delta = tf.clip_by_value(delta + step, -epsilon, epsilon)
    return tf.stop_gradient(tf.clip_by_value(x + delta, 0.0, 255.0))


def train_against_changes(model: keras.Model, epsilon: float) -> None:
    """Makes `model.fit` train on `perturbed_batch` of every batch (adversarial training):
    the model's own `train_step`, given the moved images. Set before `fit` traces it; the
    saved model is the plain model."""
    plain = model.train_step

    def train_step(data):
        x, y, *rest = data
        return plain((perturbed_batch(model, x, y, epsilon), y, *rest))

    model.train_step = train_step
