"""Forward time per image of the Kulkarni & Rajendran hidden layer: original against fast variant.

The original variant simulates 1000 RK2 steps of input spikes -> synaptic trace -> 12 kernels
-> LIF; the fast one convolves the image once and drives the LIF neurons with a decaying
current. Both run batched on the device given; the kernels come from the one-epoch CNN on
``--cnn-samples`` training images (seed 0). Prints one line per (variant, batch size) and
writes a JSON file. On a GPU the timings synchronise the device.

    python benchmarks/kulkarni_forward.py --device cpu --threads 1
    python benchmarks/kulkarni_forward.py --device cuda --batch 32,256 --images 512
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from snnlab import default_device
from snnlab.data import load_mnist
from snnlab.models.kulkarni2018 import Kulkarni2018Config, hidden_layer, train_kernels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", default="32", help="comma-separated batch sizes")
    p.add_argument("--images", type=int, default=64, help="test images per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--cnn-samples", type=int, default=6000)
    p.add_argument("--out", default="benchmarks/out/kulkarni_forward.json")
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        p.error(f"--batch: expected comma-separated ints, got {args.batch!r}")
    if min(batches) < 1 or args.images < 1 or args.repeats < 1 or args.cnn_samples < 1:
        p.error("--batch, --images, --repeats and --cnn-samples must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = default_device(args.device)
    cfg = Kulkarni2018Config()
    xt, yt = load_mnist(train=True)
    x, _ = load_mnist(train=False)
    kernels, _ = train_kernels(xt[:args.cnn_samples], yt[:args.cnn_samples], cfg, seed=0)
    x = x[:args.images].to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for variant in ("original", "fast"):
        hidden_layer(x[:min(4, len(x))], kernels, cfg, variant, "counts", device=dev)  # warm-up
        for b in batches:
            times = []
            for _ in range(args.repeats):
                sync()
                t0 = time.perf_counter()
                counts = [hidden_layer(x[a:a + b], kernels, cfg, variant, "counts", device=dev)
                          for a in range(0, len(x), b)]
                sync()
                times.append(time.perf_counter() - t0)
            spikes = float(torch.cat(counts).sum(1).float().mean())
            ms = 1e3 * statistics.median(times) / len(x)
            rows.append({"variant": variant, "batch": b, "ms_per_image": ms, "spikes_per_image": spikes})
            print(f"{variant:8s} batch {b:4d}: {ms:8.2f} ms/image  ({spikes:.0f} hidden spikes/image)", flush=True)
    for b in batches:
        o, f = (next(r["ms_per_image"] for r in rows if r["variant"] == v and r["batch"] == b)
                for v in ("original", "fast"))
        print(f"batch {b}: fast variant {o / f:.1f}x faster")
    meta = {"device": str(dev), "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "torch": torch.__version__, "images": len(x),
            "repeats": args.repeats, "cnn_samples": args.cnn_samples, "date": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
