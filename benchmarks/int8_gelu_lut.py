"""Would a lookup table make the int8 copy's GELUs faster? Measured: no (docs/BENCHMARKS.md).

    python benchmarks/int8_gelu_lut.py --data ../shared/datasets/cifar10-jpeg [--model M]

Between two 8-bit layers the copy runs DequantizeLinear -> Gelu -> QuantizeLinear: a
function of the 256 values its input can take. This writes a variant of the model's int8
copy (default: the shipped one) in which each such chain is a 256-entry table of the same
results, read with Cast -> Gather (ONNX has no 8-bit lookup of its own), checks that it
answers the same on 2,048 of the model's validation images, then times both on a batch of
256, interleaved: median images/s of 5 rounds of 8 batches each.
"""

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core import quantize  # noqa: E402

IMAGES, BATCH, ROUNDS = 2048, 256, 5


def gelu_table(dq_scale, dq_zero, q_scale, q_zero) -> np.ndarray:
    """uint8 `(256,)`: QuantizeLinear(Gelu(DequantizeLinear(v))) for every input value v."""
    x = (np.arange(256, dtype=np.float32) - np.float32(dq_zero)) * np.float32(dq_scale)
    erf = np.array([math.erf(v / math.sqrt(2)) for v in x.tolist()])
    y = (0.5 * x * (1 + erf)).astype(np.float32)
    return np.clip(np.rint(y / np.float32(q_scale)) + np.float32(q_zero), 0, 255).astype(np.uint8)


def with_tables(source: Path, target: Path) -> int:
    """Writes `source` with its DequantizeLinear -> Gelu -> QuantizeLinear chains as
    tables to `target`; returns how many it replaced."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(source)
    graph = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    readers = {}
    for n in graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    replaced, drop = {}, set()
    for gelu in (n for n in graph.node if n.op_type == "Gelu"):
        dq, after = producer.get(gelu.input[0]), readers.get(gelu.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1:
            continue
        q = after[0]
        if q.op_type != "QuantizeLinear":
            continue
        k = len(replaced)
        scales = (values[dq.input[1]], values[dq.input[2]], values[q.input[1]], values[q.input[2]])
        graph.initializer.append(numpy_helper.from_array(gelu_table(*scales), f"gelu_lut_{k}"))
        index = f"gelu_lut_{k}_index"
        replaced[id(gelu)] = [
            helper.make_node("Cast", [dq.input[0]], [index], to=TensorProto.INT32),
            helper.make_node("Gather", [f"gelu_lut_{k}", index], [q.output[0]], axis=0),
        ]
        drop |= {id(q)} | ({id(dq)} if len(readers[dq.output[0]]) == 1 else set())
    nodes = []  # the table takes the Gelu's place: the graph stays in topological order
    for n in graph.node:
        if id(n) not in drop:
            nodes += replaced.get(id(n), [n])
    graph.ClearField("node")
    graph.node.extend(nodes)
    onnx.save(model, target)
    return len(replaced)


def images_per_second(engine, batch) -> float:
    started = time.perf_counter()
    for _ in range(8):
        engine.predict_on_batch(batch)
    return 8 * len(batch) / (time.perf_counter() - started)


def main() -> None:
    args, _, dataset = model_and_its_split(__doc__.split("\n")[0])
    x = dataset.split("val")[0][:IMAGES]
    copy = quantize.Int8Model(quantize.int8_path(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "lut.onnx"
        print(f"{with_tables(copy.path, target)} GELU chains as tables")
        table = quantize.Int8Model(target)
        a, b = copy.predict_on_batch(x), table.predict_on_batch(x)
        print(
            f"largest probability difference {np.abs(a - b).max():.2g}, same top class on "
            f"{(a.argmax(1) == b.argmax(1)).mean():.2%} of {len(x):,} images"
        )
        rates = {"as built": [], "tables": []}
        for _ in range(ROUNDS):
            for name, engine in (("as built", copy), ("tables", table)):
                rates[name].append(images_per_second(engine, x[:BATCH]))
    base = np.median(rates["as built"])
    for name, r in rates.items():
        print(f"{name}: {np.median(r):,.0f} images/s ({np.median(r) / base:.2f}x)")


if __name__ == "__main__":
    main()
