"""Per-phase throughput: the straightforward per-sample loop vs snnlab's fast path.

Phases (real MNIST): Mozafari 2019 encoding (6 DoG), layer-1 STDP, layer-2 STDP, layer-3
R-STDP, evaluation; Kheradpisheh 2018 encoding (2 DoG), layer-1 STDP, layer-2 STDP, features. For each: samples/s of (a) the plain loop, one sample at a
time over all time steps as the reference library does it, and (b) the fast path
(batched encoding, chunked exact training, final-slice inference); median of ``--repeats``
runs and the ratio, next to the reference library's and a batched C++ peer's figures on
these machines (measured earlier, kept below as constants); then the fast path's scaling with batch size, time
steps and samples, and the batched training modes (mini-batches of 16 sharing the
batch-start weights) against the exact fast path. Writes a JSON file and a bar plot.

    python benchmarks/bench.py --samples 2000 --plain-samples 100 --repeats 3 --out benchmarks/out

The peers' figures were taken with trained weights (after layer 1 has seen 6k samples):
by default the networks here load the stored quick-preset runs (``results/*_quick/
weights.pt``) when present, else they start from fresh seed-1 weights (say which in the
JSON). Fresh weights make every layer fire densely and are not comparable.

``--peers`` measures the peers in the same run instead of quoting those figures: the same
images, the same trained weights (copied into their layers) and the same layer inputs.
SpykeTorch (the reference library, GPL-3.0; put a checkout of its source,
github.com/miladmozafari/SpykeTorch, on ``PYTHONPATH``) runs its scripts' per-sample loops on the per-sample loop's
samples; Spyker (``pip install spyker==0.1.0``) runs its batched API on the fast path's
samples, at the best of batch sizes 16, 64 and 256. Each peer phase checks a cheap agreement
with snnlab, so that a broken call is never timed. A missing peer is skipped with a line
saying how to get it, and its earlier figures (the constants) stand in, marked ``*``. Neither peer is a
dependency of snnlab: they are imported here only, and none of their code is copied.

    PYTHONPATH=.:path/to/SpykeTorch python benchmarks/bench.py --peers \\
        --samples 2000 --plain-samples 100 --repeats 3 --out benchmarks/out
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
from snnlab.coding import Encoder, times_to_wave, wave_to_times
from snnlab.competition import k_winners, pointwise_inhibition
from snnlab.data import encoded_mnist, load_mnist
from snnlab.io import load_model
from snnlab.layers import conv_potentials, fire
from snnlab.learning import apply_stdp, spike_times_of, stdp_pairing, stdp_rates_for_winners
from snnlab.models.mozafari2019 import Mozafari2019
from snnlab.models.kheradpisheh2018 import Kheradpisheh2018
from snnlab.layers import layer_times, pad_times, pool_times
from snnlab.training import StdpLayer, decide, train_rstdp, train_stdp

# samples/s of the reference library (SpykeTorch, trained weights) and of a batched C++ peer
# (Spyker 0.1, best batch size) on these 2-core machines, measured in earlier runs; with
# --peers they only stand in for a peer that is missing
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


def timed_result(fn, repeats):
    """Median seconds of ``repeats`` calls of ``fn``, and what its last call returned."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), res


def timed(fn, repeats):
    return timed_result(fn, repeats)[0]


def _agree(peer, name, ok, detail):
    # a broken peer call must stop the run rather than be timed
    if not ok:
        raise SystemExit(f"bench.py: {peer} disagrees with snnlab in {name}: {detail}")


def _competition(w, x, spec, t):
    """snnlab's spikes after point-wise inhibition and winners of the samples ``x`` (padded
    input times), all with the weights ``w``: what a peer's first batch must come close to."""
    spk, pot = fire(conv_potentials(times_to_wave(x, t), w), spec.threshold)
    pot = pointwise_inhibition(pot)
    win = k_winners(pot, spec.k, spec.radius, pot.sign())
    return int(pot[:, -1].gt(0).sum()), int(win[..., 0].ge(0).sum())


def _trained(w, x, spec, rates, t):
    """The weights after snnlab's exact STDP over ``x`` (equal to the plain loop's, tested)."""
    w = w.clone()
    train_stdp(w, x, spec, rates[:len(x)], t)
    return w


class SpykeTorchPeer:
    """The reference library's per-sample loops, written as its scripts write them
    (MozafariDeep.py, KheradpishehDeep.py), on the per-sample loop's samples. SpykeTorch is
    GPL-3.0: it is imported and called here only, never copied into snnlab.

    Each phase is timed from the same input as snnlab's (the layer's padded input spike-wave;
    the frozen layers below it are run once, untimed, by SpykeTorch itself and checked equal
    to snnlab's caches). The scripts recompute the frozen layers for every sample, so their
    own training loops are slower than the figures here."""

    name = "SpykeTorch"
    how = "put a checkout of its source (github.com/miladmozafari/SpykeTorch) on PYTHONPATH"

    def __init__(self, dev, t, m, repeats):
        from SpykeTorch import functional, snn, utils

        self.sf, self.snn, self.utils = functional, snn, utils
        self.dev, self.t, self.m, self.repeats = dev, t, m, repeats

    def describe(self):
        return (f"{self.name} ({Path(self.utils.__file__).parent}): its scripts' per-sample loops "
                f"on the first {self.m} samples")

    def _conv(self, w):
        conv = self.snn.Convolution(w.shape[1], w.shape[0], w.shape[-1]).to(self.dev)
        conv.weight.copy_(w)
        return conv

    def _waves(self, times):
        # the scripts' cached dataset: each sample's spike-wave, uint8 (T, C, H, W)
        return [times_to_wave(times[i], self.t, torch.uint8).to(self.dev) for i in range(self.m)]

    def _run(self, fn):
        sec, res = timed_result(fn, self.repeats)
        return self.m / sec, res

    def encoding(self, name, enc, images, times):
        """S1C1Transform / S1Transform: ToTensor * 255, Filter, local_normalization,
        Intensity2Latency, sign; on the CPU, where the scripts' DataLoader runs it."""
        from torchvision import transforms

        u, sf = self.utils, self.sf
        bank = u.Filter([u.DoGKernel(*d) for d in enc.dogs], padding=enc.bank.padding, thresholds=enc.bank.threshold)
        latency = u.Intensity2Latency(self.t)
        to_tensor = transforms.ToTensor()
        pixels = images[:self.m].cpu().numpy()

        def run():
            out = []
            for a in pixels:
                x = (to_tensor(a) * 255).unsqueeze_(0)
                out.append(latency(sf.local_normalization(bank(x), enc.norm_radius)).sign().byte())
            return torch.stack(out)

        per_s, waves = self._run(run)
        _agree(self.name, name, torch.equal(wave_to_times(waves), times[:self.m].cpu()), "spike times differ")
        return per_s

    def mz_inputs(self, net, times, x1, x2, x3):
        """conv1's, conv2's and conv3's padded input spike-waves of each sample, by the
        script's forward (conv1 at its threshold, conv2 at the frozen one), untimed."""
        sf, cfg = self.sf, net.config
        c1, c2 = self._conv(net.conv1.weight), self._conv(net.conv2.weight)
        ins = ([], [], [])
        for wave in self._waves(times):
            ins[0].append(sf.pad(wave.float(), (2, 2, 2, 2), 0))
            spk, _ = sf.fire(c1(ins[0][-1]), cfg.thresholds[0], True)
            ins[1].append(sf.pad(sf.pooling(spk, 2, 2), (1, 1, 1, 1)))
            spk, _ = sf.fire(c2(ins[1][-1]), cfg.frozen_conv2_threshold, True)
            ins[2].append(sf.pad(sf.pooling(spk, 3, 3), (2, 2, 2, 2)))
        p = net.conv3.padding
        same = (torch.equal(wave_to_times(torch.stack(ins[0])).cpu(), x1[:self.m].cpu())
                and torch.equal(wave_to_times(torch.stack(ins[1])).cpu(), x2[:self.m].cpu())
                and torch.equal(torch.stack(ins[2])[:, -1, :, p:-p, p:-p].cpu(), x3[:self.m].float().cpu()))
        _agree(self.name, "the inputs of conv1-3", same, "the frozen layers' spikes differ")
        return ins

    def kh_inputs(self, kh, times, x1, x2):
        """conv1's and conv2's padded input spike-waves (conv2's with point-wise inhibition,
        as the script trains it), untimed."""
        sf = self.sf
        c1 = self._conv(kh.conv1.weight)
        ins = ([], [])
        for wave in self._waves(times):
            ins[0].append(sf.pad(wave.float(), (2, 2, 2, 2), 0))
            spk, _ = sf.fire(c1(ins[0][-1]), kh.config.thresholds[0], True)
            ins[1].append(sf.pointwise_inhibition(sf.pad(sf.pooling(spk, 2, 2, 1), (1, 1, 1, 1))))
        same = (torch.equal(wave_to_times(torch.stack(ins[0])).cpu(), x1[:self.m].cpu())
                and torch.equal(wave_to_times(torch.stack(ins[1])).cpu(), x2[:self.m].cpu()))
        _agree(self.name, "the inputs of conv1-2", same, "the frozen layer's spikes differ")
        return ins

    def stdp(self, name, inputs, w, spec, rate, ref_w):
        """forward(max_layer) in training mode, then stdp(): fire, point-wise inhibition,
        k winners, STDP. The rates are at the end of the doubling schedule, where doubling
        no longer changes them, so the schedule is left out."""
        sf = self.sf
        conv = self._conv(w)
        rule = self.snn.STDP(conv, rate).to(self.dev)

        def run():
            conv.weight.copy_(w)
            for x in inputs:
                spk, pot = sf.fire(conv(x), spec.threshold, True)
                pot = sf.pointwise_inhibition(pot)
                spk = pot.sign()
                rule(x, pot, spk, sf.get_k_winners(pot, spec.k, spec.radius, spk))
            return conv.weight.clone()

        per_s, got = self._run(run)
        # snnlab flushes weights below 1e-30 to 0, SpykeTorch keeps them: close, not equal
        _agree(self.name, name, torch.allclose(got, ref_w, rtol=0, atol=1e-5),
               f"weights after {self.m} samples differ by up to {float((got - ref_w).abs().max()):.3g}")
        return per_s

    def rstdp(self, name, inputs, w, labels, dmap, reward, punish, bounds, ref_w, ref_d):
        """train_rl with fixed rates: the single winner's class decides; reward (STDP) or
        punish (anti-STDP) without stabiliser, weights clipped to ``bounds``."""
        sf = self.sf
        conv = self._conv(w)
        rules = (self.snn.STDP(conv, reward, False, *bounds).to(self.dev),
                 self.snn.STDP(conv, punish, False, *bounds).to(self.dev))
        dmap, labels = dmap.tolist(), labels[:self.m].tolist()

        def run():
            conv.weight.copy_(w)
            out = []
            for x, y in zip(inputs, labels):
                pot = conv(x)
                spk = sf.fire(pot)
                winners = sf.get_k_winners(pot, 1, 0, spk)
                d = dmap[winners[0][0]] if winners else -1
                if d != -1:
                    rules[d != y](x, pot, spk, winners)
                out.append(d)
            return conv.weight.clone(), out

        per_s, (got, dec) = self._run(run)
        _agree(self.name, name, dec == ref_d.tolist(), "decisions differ")
        _agree(self.name, name, torch.allclose(got, ref_w, rtol=0, atol=1e-6), "weights differ")
        return per_s

    def mz_evaluation(self, name, net, times, ref):
        """forward() in evaluation mode from the encoded spike-wave: decision of the winner."""
        sf, cfg = self.sf, net.config
        c1, c2, c3 = self._conv(net.conv1.weight), self._conv(net.conv2.weight), self._conv(net.conv3.weight)
        th1, th2, p3 = cfg.thresholds[0], cfg.frozen_conv2_threshold, net.conv3.padding
        dmap, waves = net.decision_map.tolist(), self._waves(times)

        def run():
            out = []
            for wave in waves:
                spk, _ = sf.fire(c1(sf.pad(wave.float(), (2, 2, 2, 2), 0)), th1, True)
                spk, _ = sf.fire(c2(sf.pad(sf.pooling(spk, 2, 2), (1, 1, 1, 1))), th2, True)
                pot = c3(sf.pad(sf.pooling(spk, 3, 3), (p3,) * 4))
                winners = sf.get_k_winners(pot, 1, 0, sf.fire(pot))
                out.append(dmap[winners[0][0]] if winners else -1)
            return out

        per_s, dec = self._run(run)
        _agree(self.name, name, dec == ref[:self.m].tolist(), "decisions differ")
        return per_s

    def kh_features(self, name, kh, times, ref):
        """forward() in evaluation mode, then test(): the pooled conv2 spikes, spiked at all."""
        sf, cfg = self.sf, kh.config
        c1, c2 = self._conv(kh.conv1.weight), self._conv(kh.conv2.weight)
        waves = self._waves(times)

        def run():
            out = []
            for wave in waves:
                spk, _ = sf.fire(c1(sf.pad(wave.float(), (2, 2, 2, 2), 0)), cfg.thresholds[0], True)
                spk, _ = sf.fire(c2(sf.pad(sf.pooling(spk, 2, 2, 1), (1, 1, 1, 1))), cfg.thresholds[1], True)
                out.append(sf.pooling(spk, 2, 2, 1).max(dim=0)[0].reshape(-1))
            return torch.stack(out)

        per_s, feats = self._run(run)
        _agree(self.name, name, torch.equal(feats.to(torch.uint8).cpu(), ref[:self.m].cpu()), "features differ")
        return per_s


class SpykerPeer:
    """Spyker 0.1 (BSD-3; C++ with oneDNN on the CPU) through its batched Python API, set up
    as its examples (mozafari_mnist_original.py, kheradpisheh_mnist_dense.py) set it up, on
    the fast path's samples and inputs (unpadded; its layers pad), at its best batch size.
    Its STDP updates a batch from the batch-start weights (snnlab's batched mode, not the
    exact one). Denormals are flushed during its runs, as it needs on the CPU, and restored
    to the default afterwards so that snnlab and SpykeTorch run as users run them."""

    name = "Spyker"
    how = "pip install spyker==0.1.0"
    BATCHES = (16, 64, 256)

    def __init__(self, dev, t, n, repeats):
        import spyker
        from importlib.metadata import version

        if dev.type != "cpu" and not spyker.cuda_available():
            raise ImportError(f"this spyker build has no CUDA, and --device is {dev}")
        self.sp, self.dev, self.t, self.n, self.repeats = spyker, dev, t, n, repeats
        self.device = spyker.device(dev.type)
        self.version = version("spyker")
        # the same threads as torch, so that the figures compare like with like
        spyker.set_max_threads(torch.get_num_threads())
        self.batches = sorted({min(b, n) for b in self.BATCHES})

    def describe(self):
        return (f"{self.name} {self.version}: batched, {self.sp.max_threads()} threads, best of batch sizes "
                f"{'/'.join(map(str, self.batches))} on the first {self.n} samples, denormals flushed")

    def _conv(self, w, pad):
        conv = self.sp.Conv(w.shape[1], w.shape[0], w.shape[-1], pad=pad, device=self.device)
        self._load(conv, w)
        return conv

    def _load(self, conv, w):
        self.sp.wrap_array(w.contiguous()).to(conv.kernel)

    def _wave(self, times):
        # its spike-waves: uint8 (B, T, C, H, W), cumulative, as spyker.code makes them
        return times_to_wave(times[:self.n], self.t, torch.uint8).contiguous()

    def _best(self, run):
        """samples/s at the best batch size (each size once, then the best ``repeats`` times
        in all), the best size, samples/s by size, and what the last run returned."""
        torch.set_flush_denormal(True)
        try:
            by = {}
            for b in self.batches:
                sec, res = timed_result(lambda: run(b), 1)
                by[b] = self.n / sec
            best = max(by, key=by.get)
            secs = [self.n / by[best]] + [timed(lambda: run(best), 1) for _ in range(self.repeats - 1)]
        finally:
            torch.set_flush_denormal(False)
        return (self.n / statistics.median(secs), best, by), res

    def encoding(self, name, enc, images, times):
        """DoG (its filter bank), threshold, local normalisation, rank-order code."""
        sp = self.sp
        size = max(d[0] for d in enc.dogs) // 2
        dog = sp.DoG(size, [sp.DoGFilter(s1, s2) for _, s1, s2 in enc.dogs], pad=enc.bank.padding, device=self.device)
        k = sp.to_torch(dog.kernel)
        # its DoG kernels are differences of unit-sum Gaussians, the reference's are divided by
        # their peak: scale each channel so that the threshold (50) means the same
        peak = (k[0] - k[1]).amax((-1, -2)).reshape(1, -1, 1, 1).to(self.dev)
        r = enc.norm_radius
        box = torch.full((1, 1, 2 * r + 1, 2 * r + 1), 1 / (2 * r + 1) ** 2, device=self.dev)
        pixels = images[:self.n].to(self.dev).unsqueeze(1)

        def run(b):
            out = []
            for a in range(0, self.n, b):
                x = sp.threshold(dog(pixels[a:a + b].float()) / peak, enc.bank.threshold)
                # it has no local normalisation: its convolution gives the local means
                mean = sp.conv(x.reshape(-1, 1, 1, *x.shape[-2:]), box, pad=r).reshape(x.shape)
                out.append(sp.code(x / (mean + 1e-12), self.t))
            return out

        res, waves = self._best(run)
        spikes = sum(int(w[:, -1].sum()) for w in waves)
        ours = int((times[:self.n] < self.t).sum())
        _agree(self.name, name, 0.9 * ours <= spikes <= 1.1 * ours, f"{spikes} input spikes against snnlab's {ours}")
        return res

    def stdp(self, name, times, pad, w, spec, rate, ref_x):
        """Conv, threshold, point-wise inhibition, k-WTA (convwta), STDP of the batch."""
        sp = self.sp
        wave = self._wave(times)
        conv = self._conv(w, pad)
        conv.stdpconfig = [sp.STDPConfig(*rate)]

        def compete(x):
            return sp.inhibit(sp.threshold(conv(x), spec.threshold))

        b = self.batches[0]
        pot = compete(wave[:b])
        got = int(sp.fire(pot)[:, -1].sum()), sum(map(len, sp.convwta(pot, spec.radius, spec.k)))
        ours = _competition(w, ref_x[:b], spec, self.t)
        _agree(self.name, name, all(0.9 * o <= g <= 1.1 * o for g, o in zip(got, ours)),
               f"first batch: {got} spikes/winners against snnlab's {ours}")

        def run(b):
            self._load(conv, w)
            for a in range(0, self.n, b):
                x = wave[a:a + b]
                pot = compete(x)
                conv.stdp(x, sp.convwta(pot, spec.radius, spec.k), sp.fire(pot))

        return self._best(run)[0]

    def rstdp(self, name, times, pad, w, labels, dmap, reward, punish, bounds, ref_x):
        """Conv, one winner (convwta) on the last step (infinite), its class decides; the
        winner's config index picks reward or punishment for the batch's STDP."""
        sp = self.sp
        wave = self._wave(times)
        conv = self._conv(w, pad)
        conv.stdpconfig = [sp.STDPConfig(*reward, False, *bounds), sp.STDPConfig(*punish, False, *bounds)]
        dmap, labels = dmap.tolist(), labels[:self.n].tolist()

        def decisions(x):
            pot = sp.infinite(conv(x))
            winners = sp.convwta(pot, 0, 1)
            return pot, winners, [dmap[wi[0].z] if wi else -1 for wi in winners]

        b = self.batches[0]
        got = decisions(wave[:b])[2]
        ours = decide(w, ref_x[:b], torch.tensor(dmap), self.t, padding=pad)[0].tolist()
        same = sum(g == o for g, o in zip(got, ours))
        _agree(self.name, name, same >= 0.9 * b, f"first batch: {same} of {b} decisions equal snnlab's")

        def run(b):
            self._load(conv, w)
            for a in range(0, self.n, b):
                x = wave[a:a + b]
                pot, winners, dec = decisions(x)
                for wi, d, y in zip(winners, dec, labels[a:a + b]):
                    if wi:
                        wi[0].c = int(d != y)
                conv.stdp(x, winners, sp.fire(pot))

        return self._best(run)[0]

    def mz_evaluation(self, name, net, times, ref):
        """The example's network call: conv, fire and pool per layer, then the decision."""
        sp, cfg = self.sp, net.config
        wave = self._wave(times)
        c1, c2 = self._conv(net.conv1.weight, 2), self._conv(net.conv2.weight, 1)
        c3 = self._conv(net.conv3.weight, net.conv3.padding)
        th1, th2, dmap = cfg.thresholds[0], cfg.frozen_conv2_threshold, net.decision_map.tolist()

        def run(b):
            out = []
            for a in range(0, self.n, b):
                x = sp.pool(sp.fire(c1(wave[a:a + b]), th1), 2)
                x = sp.pool(sp.fire(c2(x), th2), 3)
                out += [dmap[wi[0].z] if wi else -1 for wi in sp.convwta(sp.infinite(c3(x)), 0, 1)]
            return out

        res, dec = self._best(run)
        same = sum(g == o for g, o in zip(dec, ref.tolist()))
        _agree(self.name, name, same >= 0.95 * self.n, f"{same} of {self.n} decisions equal snnlab's")
        return res

    def kh_features(self, name, kh, times, ref):
        """The example's network call: conv, fire, pool (padding 1) twice, spiked at all."""
        sp, cfg = self.sp, kh.config
        wave = self._wave(times)
        c1, c2 = self._conv(kh.conv1.weight, 2), self._conv(kh.conv2.weight, 1)

        def run(b):
            out = []
            for a in range(0, self.n, b):
                x = sp.pool(sp.fire(c1(wave[a:a + b]), cfg.thresholds[0]), 2, pad=1)
                x = sp.pool(sp.fire(c2(x), cfg.thresholds[1]), 2, pad=1)
                out.append(x.amax(dim=1).flatten(1))
            return torch.cat(out)

        res, feats = self._best(run)
        same = float((feats.to(torch.uint8).cpu() == ref.cpu()).float().mean())
        _agree(self.name, name, same >= 0.99, f"{100 * same:.2f}% of the feature bits equal snnlab's")
        return res


def _peer(cls, *args):
    """The peer, or None after one line saying how to get it."""
    try:
        peer = cls(*args)
    except ImportError as err:
        print(f"{cls.name}: unavailable ({err}); skipped, its earlier figures (constants) stand in (*). "
              f"To measure it: {cls.how}", flush=True)
        return None
    print(f"measuring {peer.describe()}", flush=True)
    return peer


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
    p.add_argument("--peers", action="store_true",
                   help="also run SpykeTorch and Spyker on the same samples and weights in this run, where importable")
    args = p.parse_args(argv)
    dev = default_device(args.device)
    if args.samples < 1 or args.plain_samples < 1 or args.repeats < 1:
        p.error("--samples, --plain-samples and --repeats must be positive")
    n, n_plain = args.samples, min(args.plain_samples, args.samples)
    t = 15
    st = sp = None
    if args.peers:
        st = _peer(SpykeTorchPeer, dev, t, n_plain, args.repeats)
        sp = _peer(SpykerPeer, dev, t, n, args.repeats)
        print("x = snnlab's fast path / the figure before it; * = an earlier figure (constant), not measured here", flush=True)
    net, mz_weights = _network(Mozafari2019, args.mz_weights, dev)
    cfg = net.config
    images, labels = load_mnist(train=True)
    enc = Encoder.mozafari2019().to(dev)
    times, _ = encoded_mnist(enc, True, limit=max(n, 2000), device=dev)
    times = times[:n]
    # trained layers sit at the end of the rate-doubling schedule
    rate = (0.15, -0.1125)
    rates = torch.tensor([rate]).expand(n, 2)
    results = {}
    m = n_plain

    def phase(name, plain, fast, spyketorch=None, spyker=None):
        """Time and print one phase; with --peers, ``spyketorch`` and ``spyker`` measure the
        peers (called only when they are present) and return samples/s (Spyker: also its best
        batch size and samples/s by batch size)."""
        tp = timed(plain, args.repeats)
        tf = timed(fast, args.repeats)
        ref, peer = PEERS.get(name, (None, None))
        plain_s, fast_s = n_plain / tp, n / tf
        row = results[name] = {"plain_per_s": plain_s, "fast_per_s": fast_s, "speedup": fast_s / plain_s,
                               "reference_per_s": ref, "peer_per_s": peer}
        line = f"{name:17s} plain {plain_s:9.1f}/s   fast {fast_s:9.1f}/s   x{fast_s / plain_s:6.1f}"
        if not args.peers:
            vs = "".join(f"  x{fast_s / v:6.1f} vs {who}" for who, v in (("SpykeTorch", ref), ("Spyker", peer)) if v)
            print(line + vs, flush=True)
            return
        st_s = spyketorch() if st else None
        sp_s, best, by = spyker() if sp else (None, None, None)
        row.update(spyketorch_per_s=st_s, fast_vs_spyketorch=st_s and fast_s / st_s, spyker_per_s=sp_s,
                   fast_vs_spyker=sp_s and fast_s / sp_s, spyker_batch=best, spyker_per_s_by_batch=by)
        for who, got, const in (("SpykeTorch", st_s, ref), ("Spyker", sp_s, peer)):
            v = got or const
            line += f"   {who} " + (f"{v:9.1f}/s{' ' if got else '*'} x{fast_s / v:6.1f}" if v else f"{'n/a':>9s}{'':11s}")
        print(line + (f"  (batch {best})" if sp else ""), flush=True)

    img = images[:n].to(dev)
    phase("mz encoding", lambda: plain_encode(enc, img[:m]), lambda: enc.encode_batch(img),
          lambda: st.encoding("mz encoding", enc, images, times), lambda: sp.encoding("mz encoding", enc, images, times))
    # the layers' inputs as the STDP engine sees them: padded spike times
    x1 = pad_times(times, net.conv1.padding, t)
    x2 = pad_times(net.conv2_input(times), net.conv2.padding, t)
    x3 = net.conv3_input(times)
    # SpykeTorch's own frozen layers make its layer inputs (checked equal to x1, x2, x3)
    st_in = st.mz_inputs(net, times, x1, x2, x3) if st else None
    s1 = StdpLayer(cfg.thresholds[0], cfg.k[0], cfg.radius[0])
    w1 = net.conv1.weight.data
    phase("mz layer1 STDP", lambda: plain_stdp(w1.clone(), x1[:m], s1, rates, t),
          lambda: train_stdp(w1.clone(), x1, s1, rates, t),
          lambda: st.stdp("mz layer1 STDP", st_in[0], w1, s1, rate, _trained(w1, x1[:m], s1, rates, t)),
          lambda: sp.stdp("mz layer1 STDP", times, 2, w1, s1, rate, x1))
    s2 = StdpLayer(cfg.thresholds[1], cfg.k[1], cfg.radius[1])
    w2 = net.conv2.weight.data
    phase("mz layer2 STDP", lambda: plain_stdp(w2.clone(), x2[:m], s2, rates, t),
          lambda: train_stdp(w2.clone(), x2, s2, rates, t),
          lambda: st.stdp("mz layer2 STDP", st_in[1], w2, s2, rate, _trained(w2, x2[:m], s2, rates, t)),
          lambda: sp.stdp("mz layer2 STDP", x2[..., 1:-1, 1:-1], 1, w2, s2, rate, x2))
    y = labels[:n]
    w3 = net.conv3.weight.data
    reward, punish, bounds = (0.004, -0.003), (-0.004, 0.0005), (0.2, 0.8)

    def st_rstdp():
        w = w3.clone()
        d = train_rstdp(w, x3[:m], y[:m], net.decision_map, reward, punish, t, *bounds, padding=net.conv3.padding)
        return st.rstdp("mz layer3 R-STDP", st_in[2], w3, y, net.decision_map, reward, punish, bounds, w, d)

    def sp_rstdp():
        # Spyker's conv3 input as spike times (snnlab's x3 is its last slice only)
        x3_times = pool_times(layer_times(x2, w2, cfg.frozen_conv2_threshold, t), 3, 3)
        return sp.rstdp("mz layer3 R-STDP", x3_times, net.conv3.padding, w3, y, net.decision_map, reward, punish,
                        bounds, x3)

    phase("mz layer3 R-STDP", lambda: plain_rstdp(w3.clone(), x3[:m], y, net.decision_map, t, net.conv3.padding),
          lambda: train_rstdp(w3.clone(), x3, y, net.decision_map, reward, punish, t, *bounds,
                              padding=net.conv3.padding), st_rstdp, sp_rstdp)
    phase("mz evaluation", lambda: [net.forward_full(times[i:i + 1]) for i in range(m)], lambda: net(times),
          lambda: st.mz_evaluation("mz evaluation", net, times, net(times[:m])),
          lambda: sp.mz_evaluation("mz evaluation", net, times, net(times)))

    kh, kh_weights = _network(Kheradpisheh2018, args.kh_weights, dev)
    kenc = Encoder.kheradpisheh2018().to(dev)
    ktimes, _ = encoded_mnist(kenc, True, limit=max(n, 2000), device=dev)
    ktimes = ktimes[:n]
    phase("kh encoding", lambda: plain_encode(kenc, img[:m]), lambda: kenc.encode_batch(img),
          lambda: st.encoding("kh encoding", kenc, images, ktimes),
          lambda: sp.encoding("kh encoding", kenc, images, ktimes))
    kx1 = pad_times(ktimes, kh.conv1.padding, t)
    kx2 = pad_times(kh.conv2_input(ktimes), kh.conv2.padding, t)
    st_kin = st.kh_inputs(kh, ktimes, kx1, kx2) if st else None
    k1 = StdpLayer(kh.config.thresholds[0], kh.config.k[0], kh.config.radius[0])
    kw1 = kh.conv1.weight.data
    phase("kh layer1 STDP", lambda: plain_stdp(kw1.clone(), kx1[:m], k1, rates, t),
          lambda: train_stdp(kw1.clone(), kx1, k1, rates, t),
          lambda: st.stdp("kh layer1 STDP", st_kin[0], kw1, k1, rate, _trained(kw1, kx1[:m], k1, rates, t)),
          lambda: sp.stdp("kh layer1 STDP", ktimes, 2, kw1, k1, rate, kx1))
    k2 = StdpLayer(kh.config.thresholds[1], kh.config.k[1], kh.config.radius[1])
    kw2 = kh.conv2.weight.data
    # Spyker gets conv2's input unpadded (its layer pads): the point-wise inhibition of the
    # padded map leaves the padding silent
    phase("kh layer2 STDP", lambda: plain_stdp(kw2.clone(), kx2[:m], k2, rates, t),
          lambda: train_stdp(kw2.clone(), kx2, k2, rates, t),
          lambda: st.stdp("kh layer2 STDP", st_kin[1], kw2, k2, rate, _trained(kw2, kx2[:m], k2, rates, t)),
          lambda: sp.stdp("kh layer2 STDP", kx2[..., 1:-1, 1:-1], 1, kw2, k2, rate, kx2))
    phase("kh features", lambda: [kh.forward_full(ktimes[i:i + 1]) for i in range(m)], lambda: kh(ktimes),
          lambda: st.kh_features("kh features", kh, ktimes, kh(ktimes[:m])),
          lambda: sp.kh_features("kh features", kh, ktimes, kh(ktimes)))

    # batched modes (an option of the protocols, not the published semantics): mini-batches of
    # 16 samples share the batch-start weights; compared with the exact fast path
    batched = {}
    layers = (("mz layer1 STDP", w1, x1, s1), ("mz layer2 STDP", w2, x2, s2),
              ("kh layer1 STDP", kw1, kx1, k1), ("kh layer2 STDP", kw2, kx2, k2))
    for name, w, x, spec in layers:
        sec = timed(lambda: train_stdp(w.clone(), x, spec, rates, t, mode="batched", batch=16), args.repeats)
        batched[name] = n / sec
    sec = timed(lambda: train_rstdp(w3.clone(), x3, y, net.decision_map, reward, punish, t, *bounds,
                                    mode="batched", padding=net.conv3.padding), args.repeats)
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
    if args.peers:
        meta["peers"] = {cls.name: peer.describe() if peer else "not measured: earlier figures, constants (reference_per_s, "
                         "peer_per_s)" for cls, peer in ((SpykeTorchPeer, st), (SpykerPeer, sp))}
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
            ("SpykeTorch (measured)", "spyketorch_per_s") if st else ("SpykeTorch (earlier figure)", "reference_per_s"),
            ("Spyker (measured)", "spyker_per_s") if sp else ("Spyker (earlier figure)", "peer_per_s"))
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
