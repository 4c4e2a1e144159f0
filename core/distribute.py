"""Training on several devices or machines with `tf.distribute` (data parallelism).

    default      one device, no replication (TensorFlow's default strategy)
    mirrored     `MirroredStrategy`: one replica per GPU of this machine (per logical CPU
                 device when there is no GPU), gradients all-reduced after every step
    multiworker  `MultiWorkerMirroredStrategy`: the same across machines, each one started
                 with its own `TF_CONFIG` (the cluster's addresses and its own place in it)

`TrainConfig.batch_size` is the global batch: every step consumes that many images in
all, split evenly over the replicas, so a run's recipe (batch size, learning rate, steps
per epoch) means the same on one device or eight. Per-replica batch = global / replicas.

In a cluster only the chief (the "chief" task, else worker 0) keeps the run directory;
the other workers run the same callbacks into a scratch folder that is deleted at the
end, as TensorFlow's multi-worker guide recommends.

Importing this module loads no TensorFlow; `worker_role` reads TF_CONFIG as plain JSON.
"""

from __future__ import annotations

import functools
import json
import os
from typing import NamedTuple

from core.errors import RunError

STRATEGIES = ("default", "mirrored", "multiworker")


class WorkerRole(NamedTuple):
    """This process's place in a multi-worker cluster, as TF_CONFIG states it."""

    task_type: str  # "chief" or "worker"
    index: int
    num_workers: int  # the chief and the workers together
    is_chief: bool  # keeps the run directory: the chief, else worker 0


def make_strategy(name: str):
    """Returns the `tf.distribute.Strategy` that a run with `strategy=name` trains under.

    Args:
        name: one of `STRATEGIES`. "mirrored" replicates over every GPU of this machine,
            or over its logical CPU devices when it has no GPU (one, unless configured
            with `tf.config.set_logical_device_configuration` as the tests do).
            "multiworker" reads the cluster from the `TF_CONFIG` environment variable;
            it is created once per process, before TensorFlow runs anything else
            (collective ops cannot be configured later).

    Returns:
        A `tf.distribute.Strategy`; `num_replicas_in_sync` says how many replicas train.

    Raises:
        RunError: an unknown name, or "multiworker" without a usable TF_CONFIG.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        worker_role()  # a readable sentence for a missing or malformed TF_CONFIG
        return _multiworker_strategy()
    raise RunError(f"Unknown strategy '{name}'. Strategies: {', '.join(STRATEGIES)}.")


@functools.cache
def _multiworker_strategy():
    # Cached: a process can join its cluster only once.
    import tensorflow as tf

    _fix_keras_multiworker_mean()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _fix_keras_multiworker_mean() -> None:
    # Keras 3.15 averages each step's metrics over the workers with
    # `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars ("Invalid reduction
    # dimension 0 for input with 0 dimensions"; tensorflow/tensorflow#72388,
    # keras-team/keras#20585). This process trains for its cluster only, so the fix
    # (axis=None: the mean over replicas) replaces Keras's function for the process.
    import keras
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    trainer.reduce_per_replica = reduce_per_replica


def worker_role(environ=None) -> WorkerRole:
    """Reads this process's place in the cluster from `TF_CONFIG`.

    Args:
        environ: the environment to read; `os.environ` if None.

    Returns:
        A `WorkerRole`, e.g. `WorkerRole("worker", 1, 2, False)`.

    Raises:
        RunError: TF_CONFIG is missing, not JSON, or does not place this task in its cluster.
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        raise RunError(
            "The multiworker strategy needs TF_CONFIG: set it on every machine to the "
            'cluster and that machine\'s task, e.g. {"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}.'
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], int(task["index"])
        members = {k: list(v) for k, v in cluster.items() if k in ("chief", "worker")}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise RunError(
            'TF_CONFIG must be JSON with "cluster" (lists of host:port per task type) '
            'and "task" ({"type": ..., "index": ...}).'
        ) from err
    if kind not in members or not 0 <= index < len(members[kind]):
        raise RunError(
            f"TF_CONFIG names task {kind} {index}, which its cluster does not list "
            f"({', '.join(f'{k}: {len(v)}' for k, v in members.items()) or 'no workers'})."
        )
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in members)
    return WorkerRole(kind, index, sum(len(v) for v in members.values()), chief)


def is_chief(strategy_name: str, environ=None) -> bool:
    """True when this process keeps the run directory: always, except on the non-chief
    workers of a multi-worker cluster.

    Raises:
        RunError: "multiworker" with an unusable TF_CONFIG (see `worker_role`).
    """
    return strategy_name != "multiworker" or worker_role(environ).is_chief


def per_replica_batch(global_batch: int, replicas: int) -> int:
    """Returns the batch each replica computes on.

    Raises:
        RunError: the global batch does not split evenly over the replicas.
    """
    if global_batch % replicas:
        raise RunError(
            f"The batch size {global_batch} is the global batch and must split evenly over "
            f"the {replicas} replicas: use a multiple of {replicas}."
        )
    return global_batch // replicas
