"""Per-phase throughput: the straightforward per-sample loop vs snnlab's fast path.

Phases (Mozafari 2019 network, real MNIST): encoding (6 DoG), layer-1 STDP, layer-2 STDP,
layer-3 R-STDP, evaluation. For each: samples/s of (a) the plain loop, one sample at a
time over all time steps as the reference library does it, and (b) the fast path
(batched encoding, chunked exact training, final-slice inference); median of ``--repeats``
runs and the ratio. Writes a JSON file and a bar plot.

    python benchmarks/bench.py --samples 300 --repeats 3 --out benchmarks/out
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from snnlab import default_device
from snnlab.coding import Encoder, times_to_wave
from snnlab.competition import k_winners, pointwise_inhibition
from snnlab.data import encoded_mnist, load_mnist
from snnlab.layers import conv_potentials, fire
from snnlab.learning import apply_stdp, rate_schedule, spike_times_of, stdp_pairing, stdp_rates_for_winners
from snnlab.models.mozafari2019 import Mozafari2019, Mozafari2019Config
from snnlab.training import StdpLayer, train_rstdp, train_stdp


def plain_stdp(w, tin, spec, rates, t):
    for i in range(len(tin)):
        spk, pot = fire(conv_potentials(times_to_wave(tin[i], t), w), spec.threshold)
        pot = pointwise_inhibition(pot)
        spk = pot.sign()
        win = k_winners(pot, spec.k, spec.radius, spk)
        pair = stdp_pairing(tin[i:i + 1], spike_times_of(spk[None]), win[None], w.shape[-2:])
        lr = stdp_rates_for_winners(pair, win[None], rates[i].expand(w.shape[0], 2))
        apply_stdp(w, win, lr[0], True, 0.0, 1.0, flush_below=1e-30)


def plain_rstdp(w, x3, y, dmap, t):
    for i in range(len(x3)):
        pot = conv_potentials(times_to_wave(torch.where(x3[i] > 0, 0, t).to(torch.uint8), t), w)
        spk, _ = fire(pot, None)
        win = k_winners(pot, 1, 0, spk)
        if win[0, 0] < 0:
            continue
        rates = (0.004, -0.003) if int(dmap[win[0, 0]]) == int(y[i]) else (-0.004, 0.0005)
        lr = torch.where(x3[i][:, win[0, 1]:win[0, 1] + 5, win[0, 2]:win[0, 2] + 5] > 0, rates[0], rates[1])
        w[win[0, 0]] += lr
        w.clamp_(0.2, 0.8)


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=300, help="samples per phase and run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="benchmarks/out")
    args = p.parse_args(argv)
    dev = default_device(args.device)
    n = args.samples
    t = 15
    cfg = Mozafari2019Config()
    net = Mozafari2019(cfg, seed=1).to(dev)
    images, labels = load_mnist(train=True)
    enc = Encoder.mozafari2019().to(dev)
    times, _ = encoded_mnist(enc, True, limit=max(n, 2000), device=dev)
    times = times[:n]
    rates, _ = rate_schedule(n, 0.004, a_minus=-0.003)
    results = {}

    def phase(name, plain, fast):
        tp = timed(plain, args.repeats)
        tf = timed(fast, args.repeats)
        results[name] = {"plain_per_s": n / tp, "fast_per_s": n / tf, "speedup": tp / tf}
        print(f"{name:14s} plain {n / tp:9.1f}/s   fast {n / tf:9.1f}/s   x{tp / tf:6.1f}", flush=True)

    img = images[:n].to(dev)
    phase("encoding", lambda: [enc(img[i]) for i in range(n)], lambda: enc.encode_batch(img))
    x1 = net.conv1_input(times)
    s1 = StdpLayer(cfg.thresholds[0], cfg.k[0], cfg.radius[0])
    w1 = net.conv1.weight.data
    phase("layer1 STDP", lambda: plain_stdp(w1.clone(), x1, s1, rates, t),
          lambda: train_stdp(w1.clone(), x1, s1, rates, t))
    x2 = net.conv2_input(times)
    s2 = StdpLayer(cfg.thresholds[1], cfg.k[1], cfg.radius[1])
    w2 = net.conv2.weight.data
    phase("layer2 STDP", lambda: plain_stdp(w2.clone(), x2, s2, rates, t),
          lambda: train_stdp(w2.clone(), x2, s2, rates, t))
    x3 = net.conv3_input(times)
    y = labels[:n]
    w3 = net.conv3.weight.data
    phase("layer3 R-STDP", lambda: plain_rstdp(w3.clone(), x3, y, net.decision_map, t),
          lambda: train_rstdp(w3.clone(), x3, y, net.decision_map, (0.004, -0.003), (-0.004, 0.0005), t, 0.2, 0.8))
    phase("evaluation", lambda: [net.forward_full(times[i:i + 1]) for i in range(n)], lambda: net(times))
    meta = {"device": str(dev), "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "samples": n,
            "repeats": args.repeats, "date": time.strftime("%Y-%m-%d %H:%M"), "weights": "fresh (seed 1)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"meta": meta, "phases": results}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(names))
    ax.bar([i - 0.2 for i in xs], [results[k]["plain_per_s"] for k in names], 0.4, label="per-sample loop")
    ax.bar([i + 0.2 for i in xs], [results[k]["fast_per_s"] for k in names], 0.4, label="snnlab fast path")
    ax.set_xticks(list(xs), names)
    ax.set_yscale("log")
    ax.set_ylabel("samples / s")
    ax.set_title(f"Mozafari 2019 phases on {meta['device']} ({meta['threads']} threads)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")


if __name__ == "__main__":
    main()
