"""Which hidden-layer kernels give the Kulkarni & Rajendran network the most separable hidden layer?

For each seed, trains the kernel CNN exactly as ``reproduce(Kulkarni2018Config(cnn_activation=...),
seed=seed)`` does on the CPU (one thread, the same image subset and order), predicts every
hidden neuron's spike count for all 70k MNIST images from its mean current
(:func:`snnlab.models.kulkarni2018.expected_hidden_counts`: no simulation, ~0.99 correlation
with the simulated counts), and fits a linear softmax probe on the first 50k training images.
It prints one JSON line per seed: ``val`` is the accuracy on the last 10k *training* images
(the number to choose kernels by), ``test`` the test accuracy (for reference only; never
use it to choose). ~1 min per seed on two cores.

    python benchmarks/kulkarni_kernel_probe.py lif 0,1,2,3,4
    python benchmarks/kulkarni_kernel_probe.py relu 0
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

from snnlab.data import load_mnist
from snnlab.models.kulkarni2018 import Kulkarni2018Config, expected_hidden_counts, train_kernels


def features(x, kernels, cfg):
    return torch.cat([expected_hidden_counts(x[i:i + 5000], kernels, cfg).flatten(1)
                      for i in range(0, len(x), 5000)])


def linear_probe(ftr, ytr, evals, epochs=15, wd=1e-4, seed=0):
    """Softmax regression (Adam, cosine schedule, batches of 256) -> accuracy (%) on each eval set."""
    g = torch.Generator().manual_seed(seed)
    s = ftr.std() + 1e-6
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the read-out's initial weights: repeatable figures
        lin = torch.nn.Linear(ftr.shape[1], 10)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        perm = torch.randperm(ftr.shape[0], generator=g)
        for i in range(0, len(perm), 256):
            idx = perm[i:i + 256]
            loss = F.cross_entropy(lin(ftr[idx] / s), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        return [100 * (lin(f / s).argmax(1) == y).float().mean().item() for f, y in evals]


def main(activation, seeds):
    cfg = Kulkarni2018Config(cnn_activation=activation)
    xtr, ytr = load_mnist(train=True)
    xte, yte = load_mnist(train=False)
    ytr, yte = ytr.long(), yte.long()
    for seed in seeds:
        t0 = time.time()
        gen = torch.Generator().manual_seed(seed)
        torch.randperm(60000, generator=gen)  # reproduce draws the training subset first
        cnn_idx = torch.randperm(60000, generator=gen)[: cfg.cnn_samples]
        torch.set_num_threads(1)  # as reproduce on the CPU: the kernels depend on it
        kernels, _ = train_kernels(xtr[cnn_idx], ytr[cnn_idx], cfg, seed=seed)
        torch.set_num_threads(2)
        ftr, fte = features(xtr, kernels, cfg), features(xte, kernels, cfg)
        val, test = linear_probe(ftr[:50000], ytr[:50000], [(ftr[50000:], ytr[50000:]), (fte, yte)])
        print(json.dumps({"activation": activation, "seed": seed, "val": round(val, 2), "test": round(test, 2),
                          "spikes_per_image": round(ftr.sum(1).mean().item()), "s": round(time.time() - t0)}),
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("relu", "lif"):
        sys.exit("usage: python benchmarks/kulkarni_kernel_probe.py {relu,lif} SEED[,SEED...]")
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")])
