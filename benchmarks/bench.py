"""Per-phase throughput: the straightforward per-sample loop vs snnlab's fast path.

Phases (real MNIST): Mozafari 2019 encoding (6 DoG), layer-1 STDP, layer-2 STDP, layer-3
R-STDP, evaluation; Kheradpisheh 2018 encoding (2 DoG), layer-1 STDP, layer-2 STDP, features. For each: samples/s of (a) the plain loop, one sample at a
time over all time steps as the reference library does it, and (b) the fast path
(batched encoding, chunked exact training, final-slice inference); median of ``--repeats``
runs and the ratio, next to the reference library's and a batched C++ peer's figures on
these machines (design.md section 6); then the fast path's scaling with batch size, time
steps and samples, and the batched training modes (mini-batches of 16 sharing the
batch-start weights) against the exact fast path. Writes a JSON file and a bar plot.

    python benchmarks/bench.py --samples 2000 --plain-samples 100 --repeats 3 --out benchmarks/out

The peers' figures were taken with trained weights (after layer 1 has seen 6k samples):
by default the networks here load the stored quick-preset runs (``results/*_quick/
weights.pt``) when present, else they start from fresh seed-1 weights (say which in the
JSON). Fresh weights make every layer fire densely and are not comparable.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from snnlab import _coding_kernels, default_device
from snnlab.coding import Encoder, times_to_wave
from snnlab.competition import k_winners, pointwise_inhibition
from snnlab.data import encoded_mnist, load_mnist
from snnlab.io import load_model
from snnlab.layers import conv_potentials, fire
from snnlab.learning import apply_stdp, spike_times_of, stdp_pairing, stdp_rates_for_winners
from snnlab.models.mozafari2019 import Mozafari2019
from snnlab.models.kheradpisheh2018 import Kheradpisheh2018
from snnlab.training import StdpLayer, train_rstdp, train_stdp

# samples/s of the reference library (SpykeTorch, trained weights) and of a batched C++ peer
# (Spyker 0.1, best batch size) on these 2-core machines, from design.md section 6
PEERS = {
    "mz encoding": (690, 9062), "mz layer1 STDP": (None, 640), "mz layer2 STDP": (43, 228),
    "mz layer3 R-STDP": (37, 140), "mz evaluation": (38, 146),
    "kh encoding": (1326, 31218), "kh layer1 STDP": (138, 968), "kh layer2 STDP": (92, 380),
    "kh features": (113, 505),
}


def plain_encode(enc, img):
    # one image at a time through torch's convolutions and sort (the compiled kernels off)
    on = _coding_kernels.available
    _coding_kernels.available = lambda: False
    try:
        return [enc(img[i]) for i in range(len(img))]
    finally:
        _coding_kernels.available = on


def plain_stdp(w, tin, spec, rates, t):
    for i in range(len(tin)):
        spk, pot = fire(conv_potentials(times_to_wave(tin[i], t), w), spec.threshold)
        pot = pointwise_inhibition(pot)
        spk = pot.sign()
        win = k_winners(pot, spec.k, spec.radius, spk)
        pair = stdp_pairing(tin[i:i + 1], spike_times_of(spk[None]), win[None], w.shape[-2:])
        lr = stdp_rates_for_winners(pair, win[None], rates[i].expand(w.shape[0], 2))
        apply_stdp(w, win, lr[0], True, 0.0, 1.0, flush_below=1e-30)


def plain_rstdp(w, x3, y, dmap, t, pad):
    for i in range(len(x3)):
        xi = torch.nn.functional.pad(x3[i], (pad,) * 4)
        pot = conv_potentials(times_to_wave(torch.where(xi > 0, 0, t).to(torch.uint8), t), w)
        spk, _ = fire(pot, None)
        win = k_winners(pot, 1, 0, spk)
        if win[0, 0] < 0:
            continue
        rates = (0.004, -0.003) if int(dmap[win[0, 0]]) == int(y[i]) else (-0.004, 0.0005)
        lr = torch.where(xi[:, win[0, 1]:win[0, 1] + 5, win[0, 2]:win[0, 2] + 5] > 0, rates[0], rates[1])
        w[win[0, 0]] += lr
        w.clamp_(0.2, 0.8)


def _network(cls, path, dev):
    """The stored trained network at ``path`` if it exists, else fresh seed-1 weights."""
    if path and Path(path).is_file():
        net = load_model(path)
        if not isinstance(net, cls):
            raise SystemExit(f"bench.py: {path} holds a {type(net).__name__}, expected {cls.__name__}")
        return net.to(dev), str(path)
    return cls(seed=1).to(dev), "fresh (seed 1)"


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2000, help="samples per phase and run of the fast path")
    p.add_argument("--plain-samples", type=int, default=100, help="samples per phase and run of the per-sample loop")
    p.add_argument("--mz-weights", default="results/mozafari2019_quick/best_weights.pt",
                   help="trained Mozafari 2019 network (snnlab.io.save_model); missing: fresh weights")
    p.add_argument("--kh-weights", default="results/kheradpisheh2018_quick/weights.pt",
                   help="trained Kheradpisheh 2018 network; missing: fresh weights")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="benchmarks/out")
    args = p.parse_args(argv)
    dev = default_device(args.device)
    if args.samples < 1 or args.plain_samples < 1 or args.repeats < 1:
        p.error("--samples, --plain-samples and --repeats must be positive")
    n, n_plain = args.samples, min(args.plain_samples, args.samples)
    t = 15
    net, mz_weights = _network(Mozafari2019, args.mz_weights, dev)
    cfg = net.config
    images, labels = load_mnist(train=True)
    enc = Encoder.mozafari2019().to(dev)
    times, _ = encoded_mnist(enc, True, limit=max(n, 2000), device=dev)
    times = times[:n]
    # trained layers sit at the end of the rate-doubling schedule
    rates = torch.tensor([[0.15, -0.1125]]).expand(n, 2)
    results = {}
    m = n_plain

    def phase(name, plain, fast):
        tp = timed(plain, args.repeats)
        tf = timed(fast, args.repeats)
        ref, peer = PEERS.get(name, (None, None))
        plain_s, fast_s = n_plain / tp, n / tf
        results[name] = {"plain_per_s": plain_s, "fast_per_s": fast_s, "speedup": fast_s / plain_s,
                         "reference_per_s": ref, "peer_per_s": peer}
        vs = "".join(f"  x{fast_s / v:6.1f} vs {who}" for who, v in (("SpykeTorch", ref), ("Spyker", peer)) if v)
        print(f"{name:17s} plain {plain_s:9.1f}/s   fast {fast_s:9.1f}/s   x{fast_s / plain_s:6.1f}{vs}", flush=True)

    img = images[:n].to(dev)
    phase("mz encoding", lambda: plain_encode(enc, img[:m]), lambda: enc.encode_batch(img))
    x1 = net.conv1_input(times)
    s1 = StdpLayer(cfg.thresholds[0], cfg.k[0], cfg.radius[0])
    w1 = net.conv1.weight.data
    phase("mz layer1 STDP", lambda: plain_stdp(w1.clone(), x1[:m], s1, rates, t),
          lambda: train_stdp(w1.clone(), x1, s1, rates, t))
    x2 = net.conv2_input(times)
    s2 = StdpLayer(cfg.thresholds[1], cfg.k[1], cfg.radius[1])
    w2 = net.conv2.weight.data
    phase("mz layer2 STDP", lambda: plain_stdp(w2.clone(), x2[:m], s2, rates, t),
          lambda: train_stdp(w2.clone(), x2, s2, rates, t))
    x3 = net.conv3_input(times)
    y = labels[:n]
    w3 = net.conv3.weight.data
    phase("mz layer3 R-STDP", lambda: plain_rstdp(w3.clone(), x3[:m], y, net.decision_map, t, net.conv3_padding),
          lambda: train_rstdp(w3.clone(), x3, y, net.decision_map, (0.004, -0.003), (-0.004, 0.0005), t, 0.2, 0.8,
                              padding=net.conv3_padding))
    phase("mz evaluation", lambda: [net.forward_full(times[i:i + 1]) for i in range(m)], lambda: net(times))

    kh, kh_weights = _network(Kheradpisheh2018, args.kh_weights, dev)
    kenc = Encoder.kheradpisheh2018().to(dev)
    ktimes, _ = encoded_mnist(kenc, True, limit=max(n, 2000), device=dev)
    ktimes = ktimes[:n]
    phase("kh encoding", lambda: plain_encode(kenc, img[:m]), lambda: kenc.encode_batch(img))
    k1 = StdpLayer(kh.config.thresholds[0], kh.config.k[0], kh.config.radius[0])
    kx1 = kh.conv1_input(ktimes)
    phase("kh layer1 STDP", lambda: plain_stdp(kh.conv1.weight.data.clone(), kx1[:m], k1, rates, t),
          lambda: train_stdp(kh.conv1.weight.data.clone(), kx1, k1, rates, t))
    k2 = StdpLayer(kh.config.thresholds[1], kh.config.k[1], kh.config.radius[1])
    kx2 = kh.conv2_input(ktimes)
    phase("kh layer2 STDP", lambda: plain_stdp(kh.conv2.weight.data.clone(), kx2[:m], k2, rates, t),
          lambda: train_stdp(kh.conv2.weight.data.clone(), kx2, k2, rates, t))
    phase("kh features", lambda: [kh.forward_full(ktimes[i:i + 1]) for i in range(m)], lambda: kh(ktimes))

    # batched modes (an option of the protocols, not the published semantics): mini-batches of
    # 16 samples share the batch-start weights; compared with the exact fast path
    batched = {}
    layers = (("mz layer1 STDP", w1, x1, s1), ("mz layer2 STDP", w2, x2, s2),
              ("kh layer1 STDP", kh.conv1.weight.data, kx1, k1), ("kh layer2 STDP", kh.conv2.weight.data, kx2, k2))
    for name, w, x, spec in layers:
        sec = timed(lambda: train_stdp(w.clone(), x, spec, rates, t, mode="batched", batch=16), args.repeats)
        batched[name] = n / sec
    sec = timed(lambda: train_rstdp(w3.clone(), x3, y, net.decision_map, (0.004, -0.003), (-0.004, 0.0005), t,
                                    0.2, 0.8, mode="batched", padding=net.conv3_padding), args.repeats)
    batched["mz layer3 R-STDP"] = n / sec
    batched = {k: {"batched_per_s": v, "vs_exact_fast": v / results[k]["fast_per_s"]} for k, v in batched.items()}
    for k, v in batched.items():
        print(f"{k:17s} batched (16) {v['batched_per_s']:9.1f}/s   x{v['vs_exact_fast']:5.2f} vs exact fast", flush=True)

    # scaling of the fast path: evaluation against batch size and time steps, STDP against samples
    scaling = {"evaluation_vs_batch": {}, "encoding_evaluation_vs_time_steps": {}, "layer1_stdp_vs_samples": {}}
    for bs in (1, 16, 64, 256):
        sec = timed(lambda: [net(times[a:a + bs]) for a in range(0, n, bs)], args.repeats)
        scaling["evaluation_vs_batch"][bs] = n / sec
    for steps in (10, 15, 20, 25, 30):
        e = Encoder.mozafari2019(time_steps=steps).to(dev)
        mt = Mozafari2019(dataclasses.replace(cfg, time_steps=steps)).to(dev)
        mt.load_state_dict(net.state_dict())
        sec = timed(lambda: mt(e.encode_batch(img)), args.repeats)
        scaling["encoding_evaluation_vs_time_steps"][steps] = n / sec
    for m_ in (n // 4, n // 2, n):
        sec = timed(lambda: train_stdp(w1.clone(), x1[:m_], s1, rates[:m_], t), args.repeats)
        scaling["layer1_stdp_vs_samples"][m_] = sec
    print("scaling (fast path):", json.dumps(scaling), flush=True)
    meta = {"device": str(dev), "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "samples": n,
            "plain_samples": n_plain, "repeats": args.repeats, "date": time.strftime("%Y-%m-%d %H:%M"),
            "weights": {"mozafari2019": mz_weights, "kheradpisheh2018": kh_weights}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"meta": meta, "phases": results, "batched": batched, "scaling": scaling},
                                                 indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(11, 4))
    xs = range(len(names))
    bars = (("per-sample loop", "plain_per_s"), ("snnlab fast path", "fast_per_s"),
            ("SpykeTorch (design.md)", "reference_per_s"), ("Spyker (design.md)", "peer_per_s"))
    for j, (label, key) in enumerate(bars):
        ax.bar([i - 0.3 + 0.2 * j for i in xs], [results[k][key] or 0 for k in names], 0.2, label=label)
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("samples / s")
    ax.set_title(f"Phases of Mozafari 2019 (mz) and Kheradpisheh 2018 (kh) on {meta['device']} ({meta['threads']} threads)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")


if __name__ == "__main__":
    main()
