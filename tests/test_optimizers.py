import keras
import numpy as np
import pytest

from core.model import load_model
from core.optimizers import NS_COEFFICIENTS, Muon, orthogonalize


def _numpy_newton_schulz(g, steps):
    """The quintic iteration written out in float64 numpy, on the wide orientation."""
    a, b, c = NS_COEFFICIENTS
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / np.linalg.norm(x)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if g.shape[0] > g.shape[1] else x


@pytest.mark.parametrize("shape", [(2304, 256), (64, 216), (576, 256)])  # conv kernels
def test_orthogonalize_flattens_the_singular_values_and_keeps_the_directions(shape):
    g = np.random.default_rng(0).normal(size=shape) * 1e-3  # the gradient's scale drops out
    o = keras.ops.convert_to_numpy(orthogonalize(keras.ops.convert_to_tensor(g, "float32")))
    assert o.shape == shape
    sv = np.linalg.svd(o, compute_uv=False)
    assert sv.min() > 0.5 and sv.max() < 1.5 and sv.max() / sv.min() < 2.5
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    polar = u @ vt
    cosine = np.sum(o * polar) / (np.linalg.norm(o) * np.linalg.norm(polar))
    assert cosine > 0.97
    np.testing.assert_allclose(o, _numpy_newton_schulz(g, 3), atol=2e-4)


def test_a_kernel_step_is_a_normalised_weight_minus_the_orthogonalised_momentum():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3, 3, 8, 16))
    grads = [rng.normal(size=w0.shape) for _ in range(2)]
    kernel = keras.Variable(w0.astype("float32"))
    opt = Muon(0.5, kernel_ratio=0.2, kernel_momentum=0.6, ns_steps=3, weight_decay=0.1)
    w, buf = w0, np.zeros_like(w0)
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g, "float32"), kernel)])
        buf = 0.6 * buf + g
        step = _numpy_newton_schulz((g + 0.6 * buf).reshape(-1, 16), 3).reshape(w0.shape)
        w = w * 4.0 / np.linalg.norm(w) - 0.5 * 0.2 * step  # sqrt(16 out-channels); no decay
        np.testing.assert_allclose(kernel.numpy(), w, atol=2e-4)


def test_other_variables_take_keras_nesterov_sgd_steps_with_decoupled_decay():
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=(5, 3)).astype("float32")
    a, b = keras.Variable(w0), keras.Variable(w0)
    muon = Muon(0.3, momentum=0.85, weight_decay=0.01)
    sgd = keras.optimizers.SGD(0.3, momentum=0.85, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        g = keras.ops.convert_to_tensor(rng.normal(size=w0.shape), "float32")
        muon.apply_gradients([(g, a)])
        sgd.apply_gradients([(g, b)])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert not np.allclose(a.numpy(), w0)


def test_a_model_saved_with_muon_loads_with_its_settings_and_state(tmp_path):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer=Muon(0.1, kernel_ratio=0.3, kernel_momentum=0.5), loss="mse")
    x = np.random.default_rng(3).normal(size=(8, 6, 6, 3)).astype("float32")
    model.fit(x, np.eye(2)[np.arange(8) % 2], epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=True)
    opt = loaded.optimizer
    assert isinstance(opt, Muon) and (opt.kernel_ratio, opt.kernel_momentum) == (0.3, 0.5)
    assert int(opt.iterations.numpy()) == 1
    for saved, restored in zip(model.optimizer.variables, opt.variables, strict=True):
        np.testing.assert_allclose(np.array(saved), np.array(restored))
