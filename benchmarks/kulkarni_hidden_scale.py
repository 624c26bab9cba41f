"""Does another hidden_scale give the Kulkarni & Rajendran network a better hidden layer?

For the first 5k training and 5k test images, with the kernels of a full run, computes the
hidden events at the hidden_scale given as argument (``base``: reuse the full run's cached
events at the default 4000 pA, our calibration: the paper does not give it) and prints one JSON line: hidden spikes per image, the test
accuracy of a linear SVM on hidden spike counts (C = 0.01, 0.1) and of 8 NormAD epochs
(per-image updates, step halved every 2 epochs). ~4-7 min per scale on one core.

    python benchmarks/kulkarni_hidden_scale.py base
    python benchmarks/kulkarni_hidden_scale.py 6500

Needs the caches of ``reproduce(Kulkarni2018Config(), "runs/kul_full_b1", seed=0)``.
"""
import json
import sys
import time
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.svm import LinearSVC
from snnlab.data import load_mnist
from snnlab.models import _kulkarni_kernels as KK
from snnlab.learning import normad_kernel
from snnlab.models.kulkarni2018 import HiddenEvents, Kulkarni2018Config, compute_hidden_events, evaluate, target_steps
torch.set_num_threads(1)
N = 5000
cfg0 = Kulkarni2018Config()
xtr, ytr = load_mnist(train=True); xte, yte = load_mnist(train=False)
gen = torch.Generator().manual_seed(0)
tr_idx = torch.randperm(60000, generator=gen)[:60000].sort().values[:N]
kernels = torch.load("runs/kul_full_b1/kernels_bbceb2b77734_s0.pt")["kernels"]
def subset(h, n):
    e = int(h.offsets[n])
    return HiddenEvents(h.neuron[:e].clone(), h.step[:e].clone(), h.offsets[:n + 1].clone(), h.labels[:n].clone())
def counts(h):
    n = len(h); img = np.repeat(np.arange(n), np.diff(h.offsets.numpy()))
    m = sp.csr_matrix((np.ones(len(img), np.float32), (img, h.neuron.numpy().astype(np.int64))), shape=(n, 8112)); m.sum_duplicates(); return m
def score(htr, hte, cfg, tag):
    Xtr, Xte = counts(htr), counts(hte); s = 1.0 / Xtr.max()
    svm = {}
    for C in (0.01, 0.1):
        clf = LinearSVC(C=C, dual=False, tol=1e-3, max_iter=200).fit(Xtr * s, htr.labels.numpy())
        svm[C] = float((clf.predict(Xte * s) == hte.labels.numpy()).mean() * 100)
    W = torch.zeros(10, 8112); g = normad_kernel(cfg.n_steps, cfg.synapse, cfg.normad_tau).float(); acc = []
    for ep in range(8):
        perm = torch.randperm(len(htr), generator=torch.Generator().manual_seed(ep)).numpy()
        KK.train_epoch(htr, W, replace(cfg, lr_halve_every=2).lr_at(ep), cfg, perm, g, target_steps(cfg))
        acc.append(evaluate(hte, W, cfg))
    r = {"tag": tag, "hidden_scale": cfg.hidden_scale, "spikes_per_image": float(htr.spikes_per_image().double().mean()),
         "svm": svm, "normad_test_per_epoch": acc, "normad_best": max(acc)}
    print(json.dumps(r), flush=True)
if sys.argv[1] == "base":
    htr = subset(HiddenEvents(**torch.load("runs/kul_full_b1/hidden_train_bbceb2b77734_s0.pt")), N)
    hte = subset(HiddenEvents(**torch.load("runs/kul_full_b1/hidden_test_bbceb2b77734_s0.pt")), N)
    score(htr, hte, cfg0, "base")
else:
    cfg = replace(cfg0, hidden_scale=float(sys.argv[1]))
    t0 = time.time()
    htr = compute_hidden_events(xtr[tr_idx], ytr[tr_idx], kernels, cfg)
    hte = compute_hidden_events(xte[:N], yte[:N], kernels, cfg)
    print("hidden s", time.time() - t0, flush=True)
    score(htr, hte, cfg, f"scale {sys.argv[1]}")
