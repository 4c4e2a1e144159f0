import json
from dataclasses import replace

import keras
import numpy as np

from core.averaging import Lookahead
from core.train import TrainConfig, cli_command, parse_args, preset_defaults, train


def _bn_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def test_an_update_moves_weights_and_batch_norm_statistics_to_their_average():
    model = _bn_model()
    look = Lookahead(total_steps=100)
    look.set_model(model)
    look.on_train_begin()
    before = [np.array(w) for w in model.weights]
    for w in model.weights:
        w.assign(w.value + 1.0)  # every weight, moving mean and variance included
    look.update(0.75)
    for w, b, avg in zip(model.weights, before, look.average, strict=True):
        np.testing.assert_allclose(np.array(w), b + 0.25, rtol=1e-6)
        np.testing.assert_allclose(np.array(avg), np.array(w))
    names = {w.path for w in model.weights}
    assert {"bn/moving_mean", "bn/moving_variance"} <= names


def test_the_decay_rises_cubically_to_its_maximum_at_the_last_step():
    look = Lookahead(total_steps=1000, decay=0.8)
    assert look.decay_at(0) == 0.0
    assert look.decay_at(500) == np.float64(0.8 * 0.125)
    assert look.decay_at(1000) == 0.8 and look.decay_at(2000) == 0.8


def test_fit_ends_on_the_average_before_its_last_validation():
    model = _bn_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(64) % 2, 2)
    look = Lookahead(total_steps=2 * 8, every=3)
    gaps = []

    class Spy(keras.callbacks.Callback):  # after Lookahead in the list: sees its result
        def on_train_batch_end(self, batch, logs=None):
            gaps.append(
                max(
                    np.abs(np.array(a) - np.array(w)).max()
                    for a, w in zip(look.average, look._weights(), strict=True)
                )
            )

    model.fit(x, y, batch_size=8, epochs=2, callbacks=[look, Spy()], verbose=0)
    assert len(gaps) == 16
    assert gaps[-1] == 0.0  # the last step put the average in place
    assert all(g == 0.0 for g in gaps[2::3])  # steps 3, 6, ...: just averaged
    assert max(gaps) > 0  # between averagings the weights move on their own


def test_a_run_records_lookahead_and_it_changes_the_result(tiny_dataset):
    def final(lookahead):
        config = TrainConfig(preset="quick", epochs=2, batch_size=16, lookahead=lookahead)
        run_dir = train(config, tiny_dataset)
        saved = json.loads((run_dir / "config.json").read_text())["lookahead"]
        return saved, keras.saving.load_model(run_dir / "model.keras").get_weights()

    (on, with_avg), (off, without) = final(True), final(False)
    assert (on, off) == (True, False)
    assert any(not np.array_equal(a, b) for a, b in zip(with_avg, without, strict=True))


def test_the_cli_flag_round_trips_through_the_reproduce_command():
    seed = replace(preset_defaults("seed"), lookahead=True)
    assert "--lookahead" in cli_command(seed).split()
    assert parse_args(cli_command(seed).split()[3:]).lookahead is True
    fast = replace(preset_defaults("fast"), lookahead=False)  # on in fast's recipe
    assert "--no-lookahead" in cli_command(fast).split()
    assert parse_args(cli_command(fast).split()[3:]).lookahead is False
