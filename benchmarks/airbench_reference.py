"""airbench94's recipe in PyTorch on this CPU, trained on the project's own split: a reference.

    python -m venv /tmp/torch-env && /tmp/torch-env/bin/pip install torch numpy pillow
    /tmp/torch-env/bin/python benchmarks/airbench_reference.py \
        --data ../shared/datasets/cifar10-jpeg [--recipe airbench95] [--seed 1] [--json F]

Issue 4's targets are set against figures published for lossless CIFAR-10. This trains the
published speed-run recipe (Keller Jordan's airbench94: 94.01% on the official test split
in 9.9 epochs, mean of 1,000 runs on a GPU) the way its authors wrote it, in PyTorch, on the
split `python -m core.train` trains on (`core.data.load_dataset`, the same seed and
fraction), so its accuracy says what these JPEG files allow that recipe and whether this
project's Keras presets fall short of it. PyTorch is not one of the project's requirements:
run this with a Python that has it (a CPU wheel is enough: `--index-url
https://download.pytorch.org/whl/cpu`; the development machine's is /opt/wheels' 2.13.0+cpu).

The recipe, as published (airbench 0.1.8's `lib_airbench94`): a frozen 2x2 patch-whitening
conv (24 filters, eps 5e-4 on the eigenvalues of 5,000 images' patches, its bias trained
for the first 3 epochs), three blocks of conv-pool-BN-GELU-conv-BN-GELU of 64/256/256
channels (convs identity-initialised, batch norm without a learnt scale, eps 1e-12,
momentum 0.6), a 3x3 max pool, a linear head without bias, logits divided by 9. Nesterov
SGD (lr 11.5, momentum 0.85, weight decay 0.0153 per 1,024 images, batch-norm biases 64x
the rate), batch 1,024, label smoothing 0.2, a triangular schedule (0.2 to 1 at 23% of the
steps, to 0.07 at the end), lookahead averaging every 5 steps; flips that alternate by
epoch and 2-pixel translations (reflected border). Mixed bf16 here (the GPU runs fp16).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import load_dataset  # noqa: E402
from core.fileio import atomic_write_json  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:
    sys.exit(
        "This reference needs PyTorch, which the project does not install: run it with a "
        "Python that has it (python -m venv /tmp/torch-env && /tmp/torch-env/bin/pip "
        "install torch numpy pillow)."
    )

# What airbench95 (95.01% on the official test split in 15 epochs, mean of 200 runs) changes.
RECIPES = {
    "airbench94": dict(widths=(64, 256, 256), epochs=9.9, lr=11.5),
    "airbench95": dict(widths=(128, 384, 384), epochs=15.0, lr=10.0),
}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 `(N, H, W, 3)` images as normalised float32 NCHW, channels last in memory."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (MEAN, STD))
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class Norm(nn.BatchNorm2d):
    """Batch norm without a learnt scale: only its shift trains."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=1 - 0.6)  # PyTorch's momentum: the new share
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 conv without bias, its first in-channels outputs starting as the identity."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, padding="same", bias=False)

    def reset_parameters(self):
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[: self.weight.shape[1]])


class Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.conv2 = Conv(cin, cout), Conv(cout, cout)
        self.norm1, self.norm2 = Norm(cout), Norm(cout)

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def make_net(widths: tuple[int, ...], classes: int, train_images: torch.Tensor) -> nn.Sequential:
    whiten = nn.Conv2d(3, 24, 2, bias=True)
    nn.init.zeros_(whiten.bias)
    net = nn.Sequential(
        whiten,
        nn.GELU(),
        Block(24, widths[0]),
        Block(widths[0], widths[1]),
        Block(widths[1], widths[2]),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(widths[2], classes, bias=False),
    )
    with torch.no_grad():  # eigenvectors of the 2x2 patches' (uncentred) covariance
        x = train_images[:5000]
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        values, vectors = values.flip(0), vectors.T.flip(0)  # the largest first, as airbench
        kernels = (vectors / torch.sqrt(values + 5e-4).view(-1, 1)).reshape(12, 3, 2, 2)
        whiten.weight.copy_(torch.cat((kernels, -kernels)))
    whiten.weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def translated(padded: torch.Tensor, pad: int, size: int) -> torch.Tensor:
    """Each image of `padded` (reflect-padded by `pad`) cut at a random offset of +-pad."""
    n = len(padded)
    dy, dx = (torch.randint(0, 2 * pad + 1, (n,)) for _ in range(2))
    out = torch.empty((n, padded.shape[1], size, size), dtype=padded.dtype)
    for y in range(2 * pad + 1):
        for x in range(2 * pad + 1):
            m = (dy == y) & (dx == x)
            out[m] = padded[m, :, y : y + size, x : x + size]
    return out.contiguous(memory_format=torch.channels_last)


def viewed(net: nn.Module, x: torch.Tensor, views: str) -> torch.Tensor:
    """Logits of `x` alone ("plain"), averaged with its mirror image ("flip"), or as airbench's
    test-time level 2 ("flip+shift": half that, a quarter each for 1-pixel shifts both ways)."""
    out = net(x).float()
    if views == "plain":
        return out
    out = 0.5 * (out + net(x.flip(-1)).float())
    if views == "flip":
        return out
    padded = F.pad(x, (1,) * 4, "reflect")
    moved = viewed(net, padded[:, :, :-2, :-2], "flip") + viewed(net, padded[:, :, 2:, 2:], "flip")
    return 0.5 * out + 0.25 * moved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a --data of core.train: the folder")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="airbench94")
    p.add_argument("--epochs", type=float, help="instead of the recipe's")
    p.add_argument("--precision", choices=("bf16", "float32"), default="bf16")
    p.add_argument("--seed", type=int, default=0, help="the run's seed (the split's is 0)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    data = load_dataset(args.data)
    (xt, yt), (xv, yv) = data.split("train"), data.split("val")
    xt, xv = as_tensor(xt), as_tensor(xv)
    yt, yv = torch.from_numpy(yt).long(), torch.from_numpy(yv).long()
    recipe = RECIPES[args.recipe]
    epochs = args.epochs or recipe["epochs"]
    net = make_net(recipe["widths"], data.num_classes, xt)
    amp = dict(device_type="cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    batch, momentum = 1024, 0.85
    unit = 1024 * (1 + 1 / (1 - momentum))  # the step of constant gradients under momentum
    lr, wd = recipe["lr"] / unit, 0.0153 * batch / unit
    shifts = [q for name, q in net.named_parameters() if "norm" in name and q.requires_grad]
    rest = [q for name, q in net.named_parameters() if "norm" not in name and q.requires_grad]
    opt = torch.optim.SGD(
        [
            dict(params=shifts, lr=lr * 64, weight_decay=wd / (lr * 64)),
            dict(params=rest, lr=lr, weight_decay=wd / lr),
        ],
        momentum=momentum,
        nesterov=True,
    )
    steps = len(xt) // batch
    if not steps:
        sys.exit(f"airbench's batches hold {batch:,} images; this training split has {len(xt):,}.")
    total = math.ceil(steps * epochs)
    factors = np.interp(np.arange(total + 1), [0, int(0.23 * total), total], [0.2, 1.0, 0.07])
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: float(factors[min(i, total)]))
    average = {k: v.clone() for k, v in net.state_dict().items()}

    def lookahead(decay: float) -> None:
        for avg, w in zip(average.values(), net.state_dict().values(), strict=True):
            if w.dtype.is_floating_point:
                avg.lerp_(w, 1 - decay)
                w.copy_(avg)

    def accuracy(views: str) -> float:
        net.eval()
        with torch.no_grad(), torch.autocast(**amp):
            logits = torch.cat([viewed(net, x, views) for x in xv.split(1000)])
        net.train()
        return (logits.argmax(1) == yv).float().mean().item()

    # Flipped at random once, then all together every other epoch (airbench's alternating flip).
    once = torch.where((torch.rand(len(xt)) < 0.5).view(-1, 1, 1, 1), xt.flip(-1), xt)
    padded = F.pad(once, (2,) * 4, "reflect")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="sum")
    step, seconds, history = 0, 0.0, []
    for epoch in range(math.ceil(epochs)):
        start = time.perf_counter()
        net[0].bias.requires_grad = epoch < 3
        images = translated(padded, 2, xt.shape[-1])
        images = images.flip(-1) if epoch % 2 else images
        order = torch.randperm(len(images))
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            with torch.autocast(**amp):
                logits = net(images[idx])
            loss = loss_fn(logits.float() / 9, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            step += 1
            if step % 5 == 0:
                lookahead(0.95**5 * (step / total) ** 3)
            if step >= total:
                lookahead(1.0)  # the run ends on the average
                break
        seconds += time.perf_counter() - start
        plain = accuracy("plain")
        history.append(dict(epoch=epoch + 1, seconds=round(seconds, 1), val_accuracy=plain))
        print(f"epoch {epoch + 1}: {plain:.2%} after {seconds:.0f} s", flush=True)
    final = {views: accuracy(views) for views in ("plain", "flip", "flip+shift")}
    print(", ".join(f"{k} {v:.2%}" for k, v in final.items()) + f"; {seconds:.0f} s of training")
    if args.json:
        record = dict(vars(args), data=str(args.data), json=None, epochs=epochs, final=final)
        record["history"] = history
        atomic_write_json(args.json, record)


if __name__ == "__main__":
    main()
