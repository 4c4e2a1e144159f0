"""tf.distribute: TF_CONFIG parsing, batch checks, and real mirrored and multi-worker training.

The trainings run in subprocesses: logical devices and collective ops must be configured
before TensorFlow initialises, which in the pytest process it already has.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core import distribute, runs
from core import train as train_mod
from core.errors import RunError
from core.model import ConvBlock, ModelConfig
from core.train import TrainConfig
from tests.conftest import write_image_folder

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180  # seconds: a hung collective fails the test instead of blocking the suite
# Measured on this machine (2 cores, TF 2.21, CPU): the per-epoch training and validation
# losses of the mirrored and the two-worker runs equal the one-device run's exactly (0.0
# relative difference). Averaging two half-batch gradients may round differently on other
# CPUs or kernels, hence a tolerance, still far below what a wrong gradient would give.
RTOL = 1e-5
# 64 training images: 2 steps per epoch, each batch split 16 + 16 over the two replicas.
BATCH = 32
TINY = ModelConfig(blocks=[ConvBlock(8)], dense=[], dense_dropout=0.0)


def _tf_config(ports, index):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def _with_chief(task_type):
    cluster = {"chief": ["h:1"], "worker": ["h:2"]}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": 0}})


@pytest.mark.parametrize(
    "tf_config, role",
    [
        (_tf_config([1, 2], 0), distribute.WorkerRole("worker", 0, 2, True)),
        (_tf_config([1, 2], 1), distribute.WorkerRole("worker", 1, 2, False)),
        (_with_chief("worker"), distribute.WorkerRole("worker", 0, 2, False)),
        (_with_chief("chief"), distribute.WorkerRole("chief", 0, 2, True)),
    ],
)
def test_worker_role_reads_tf_config(tf_config, role):
    assert distribute.worker_role({"TF_CONFIG": tf_config}) == role
    assert distribute.is_chief("multiworker", {"TF_CONFIG": tf_config}) == role.is_chief
    assert distribute.is_chief("mirrored", {})  # one machine: it always keeps its run


@pytest.mark.parametrize(
    "tf_config, words",
    [
        ("", "needs TF_CONFIG"),
        ("{not json", "must be JSON"),
        ('{"cluster": {"worker": ["h:1"]}}', "must be JSON"),
        (_tf_config([1, 2], 2), "task worker 2, which its cluster does not list (worker: 2)"),
    ],
)
def test_unusable_tf_config_is_refused_with_a_sentence(tf_config, words):
    with pytest.raises(RunError, match=words.replace("(", r"\(").replace(")", r"\)")):
        distribute.worker_role({"TF_CONFIG": tf_config})


def test_batch_size_is_global_and_must_split_over_the_replicas():
    assert distribute.per_replica_batch(64, 2) == 32
    with pytest.raises(RunError, match="global batch and must split evenly over the 3"):
        distribute.per_replica_batch(64, 3)
    with pytest.raises(RunError, match="Strategy must be one of default, mirrored"):
        TrainConfig(strategy="horovod").validate()
    with pytest.raises(RunError, match="Unknown strategy 'horovod'"):
        distribute.make_strategy("horovod")


def test_default_strategy_has_one_replica_and_the_flag_round_trips(tmp_path):
    assert distribute.make_strategy("default").num_replicas_in_sync == 1
    args = train_mod.build_parser().parse_args(["--strategy", "mirrored"])
    config = train_mod.config_from_args(args)
    assert config.strategy == "mirrored"
    assert "--strategy mirrored" in train_mod.cli_command(config)
    assert TrainConfig.from_dict(config.to_dict()).strategy == "mirrored"


_MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from core import runs
from core.augment import AugmentConfig
from core.data import Dataset
from core.errors import RunError
from core.model import ModelConfig
from core.train import TrainConfig, start_run, train
from tests.conftest import class_images

x, y = class_images(32, 3)
order = np.arange(96).reshape(3, 32).T.ravel()
x, y = x[order], y[order]  # classes interleaved
ds = Dataset(["r", "g", "b"], "gen", {"train": (x[:64], y[:64]), "val": (x[64:], y[64:])})
# Uneven classes (39, 21 and 4 images), balanced: the sample weights split with the batch.
few = np.r_[np.flatnonzero(y[:64] != 2), np.flatnonzero(y[:64] == 2)[:4]]
few = np.r_[few, np.flatnonzero(y[:64] == 0)[: 64 - len(few)]]
uneven = Dataset(["r", "g", "b"], "gen", {"train": (x[few], y[few]), "val": ds.splits["val"]})
def config(strategy, batch_size, balance=False):
    return TrainConfig(
        preset="custom", model=ModelConfig.from_dict(json.loads(sys.argv[1])), epochs=2,
        batch_size=batch_size, optimizer="momentum", learning_rate=0.02, strategy=strategy,
        augment=AugmentConfig(alternate_flip=True),  # the pipeline reads the epoch variable
        balance_classes=balance,
    )

out = {}
for balance in (False, True):
    for strategy in ("default", "mirrored"):
        run_config = config(strategy, int(sys.argv[3]), balance)
        run_dir = train(run_config, uneven if balance else ds, start_run(run_config, sys.argv[2]))
        out[strategy + "-balanced" * balance] = {
            "history": runs.read_history(run_dir),
            "replicas": runs.read_status(run_dir)["replicas"],
            "state": runs.read_status(run_dir)["state"],
        }
try:
    train(config("mirrored", 33), ds, start_run(config("mirrored", 33), sys.argv[2]))
except RunError as err:
    out["odd_batch"] = str(err)
print(json.dumps(out))
"""


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _run(args):
    return subprocess.run(
        args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT
    )


def _assert_same_losses(history, reference, rtol=RTOL):
    assert [h["epoch"] for h in history] == [h["epoch"] for h in reference]
    for got, want in zip(history, reference, strict=True):
        for key in ("loss", "val_loss"):
            assert got[key] == pytest.approx(want[key], rel=rtol), (key, got, want)


def test_mirrored_on_two_cpu_replicas_matches_one_device(tmp_path):
    tiny = json.dumps(TINY.to_dict())
    proc = _run([sys.executable, "-c", _MIRRORED, tiny, str(tmp_path), str(BATCH)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["default"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    assert out["default"]["state"] == out["mirrored"]["state"] == "completed"
    assert out["odd_batch"] == (
        "The batch size 33 is the global batch and must split evenly over the 2 replicas: "
        "use a multiple of 2."
    )
    _assert_same_losses(out["mirrored"]["history"], out["default"]["history"])
    # The model learned something, so equal losses are not two untrained nets' losses.
    assert out["mirrored"]["history"][-1]["loss"] < out["mirrored"]["history"][0]["loss"]
    # Weighted by class, the same: each replica weighs its half of the batch.
    balanced = out["mirrored-balanced"]["history"]
    _assert_same_losses(balanced, out["default-balanced"]["history"])
    assert out["mirrored-balanced"]["replicas"] == 2


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_local_workers_train_like_one_process_and_only_the_chief_keeps_the_run(tmp_path):
    data = tmp_path / "images"
    write_image_folder(data, per_class=20, classes=("a", "b", "c", "d"), size=32)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY.to_dict()))
    flags = [
        "--model-config", str(tmp_path / "tiny.json"), "--data", str(data),
        "--val-fraction", "0.2", "--epochs", "2", "--batch-size", str(BATCH),
        "--optimizer", "momentum", "--lr", "0.02", "--augment", "alternate_flip", "--quiet",
    ]  # fmt: skip
    ports = _free_ports(2)
    command = [sys.executable, "-m", "core.train", *flags, "--strategy", "multiworker"]
    workers = [
        subprocess.Popen(
            [*command, "--runs-dir", str(tmp_path / "runs")],
            cwd=ROOT,
            env=_env(TF_CONFIG=_tf_config(ports, i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-3000:]
    assert outputs[1][0].startswith("completed: worker finished 2 epochs;")
    [run_dir] = (tmp_path / "runs").iterdir()  # the chief's run only
    assert Path(outputs[0][0].strip().splitlines()[-1]) == run_dir
    assert (run_dir / "model.keras").is_file()
    status = runs.read_status(run_dir)
    assert status["state"] == "completed" and status["replicas"] == 2
    assert json.loads((run_dir / "config.json").read_text())["strategy"] == "multiworker"

    assert train_mod.main([*flags, "--runs-dir", str(tmp_path / "single")]) == 0
    [single] = (tmp_path / "single").iterdir()
    assert runs.read_status(single)["replicas"] == 1
    _assert_same_losses(runs.read_history(run_dir), runs.read_history(single))
