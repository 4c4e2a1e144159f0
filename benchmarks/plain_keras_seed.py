"""The classic Keras CIFAR-10 CNN as a plain script: the reference the seed preset must match.

    python benchmarks/plain_keras_seed.py --data ../shared/datasets/cifar10-jpeg --epochs 20

The images come from the project's loader (same files, same stratified 90/10 split, seed 0),
so both sides train on identical arrays; everything after that is textbook Keras: inputs
divided by 255 in numpy, one-hot labels, `model.fit(batch_size=128)`.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="../shared/datasets/cifar10-jpeg")
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()

    import keras
    from keras import layers

    from core.data import load_dataset

    ds = load_dataset(args.data, val_fraction=0.1, seed=0)
    (x, y), (xv, yv) = ds.split("train"), ds.split("val")
    x, xv = x.astype("float32") / 255, xv.astype("float32") / 255
    y, yv = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(yv, 10)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    hist = model.fit(x, y, batch_size=128, epochs=args.epochs, validation_data=(xv, yv), verbose=2)
    seconds = time.perf_counter() - start
    print(
        f"plain-keras fit_seconds={seconds:.1f} val_accuracy={hist.history['val_accuracy'][-1]:.4f}"
    )


if __name__ == "__main__":
    main()
