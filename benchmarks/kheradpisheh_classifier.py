"""The Kheradpisheh 2018 read-out alone: features of a stored network, then the linear SVM.

Times and scores the classifier phase of ``snnlab reproduce kheradpisheh2018`` on a trained
network, with snnlab's solver (liblinear's dual coordinate descent compiled for binary
features, warm-started along the C grid) or with scikit-learn's ``LinearSVC`` itself (the
reference: one fit per C and class, as the package did before 2026-12-04).

    python benchmarks/kheradpisheh_classifier.py --weights results/kheradpisheh2018_full/weights.pt
    python benchmarks/kheradpisheh_classifier.py --weights ... --solver sklearn --patience none

C is chosen on the last sixth of the SVM's training digits (never the test set), as in the
protocol; prints the validation curve, the chosen C, the test accuracy and the seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from snnlab.coding import Encoder
from snnlab.data import encoded_mnist
from snnlab.io import load_model
from snnlab.models import kheradpisheh2018 as kh


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="a trained Kheradpisheh2018 network (snnlab.io.save_model)")
    p.add_argument("--train-samples", type=int, default=None,
                   help="SVM training digits (default: the network's config, svm_train_samples)")
    p.add_argument("--test-samples", type=int, default=None, help="test digits (default: the network's config)")
    p.add_argument("--solver", choices=("snnlab", "sklearn"), default="snnlab")
    p.add_argument("--patience", default="2", help="falls in a row that end the C walk, or 'none' (whole grid)")
    p.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    if not Path(args.weights).is_file():
        p.error(f"--weights: no file at {args.weights}")
    try:
        patience = None if args.patience.lower() == "none" else int(args.patience)
    except ValueError:
        p.error(f"--patience: expected an int or 'none', got {args.patience!r}")
    net = load_model(args.weights)
    if not isinstance(net, kh.Kheradpisheh2018):
        p.error(f"--weights: {args.weights} holds a {type(net).__name__}, expected Kheradpisheh2018")
    cfg = net.config
    n = args.train_samples or cfg.svm_train_samples
    if not 1 <= n <= 60000:
        p.error(f"--train-samples: expected 1..60000, got {n}")
    n_test = args.test_samples or cfg.test_samples
    if not 1 <= n_test <= 10000:
        p.error(f"--test-samples: expected 1..10000, got {n_test}")
    enc = Encoder.kheradpisheh2018(time_steps=cfg.time_steps)
    tr, ytr = encoded_mnist(enc, True, limit=n)
    te, yte = encoded_mnist(enc, False, limit=n_test)
    t0 = time.perf_counter()
    ftr, fte = net(tr), net(te)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    # sklearn: scikit-learn's own liblinear, the primal solver, one call per C and class
    scores = kh.classify(ftr, ytr, fte, yte, c=None, grid=cfg.svm_c_grid, val_fraction=cfg.svm_val_fraction,
                         patience=patience, dual=args.solver == "snnlab")
    t_svm = time.perf_counter() - t0
    out = {"weights": args.weights, "solver": args.solver, "svm_train_samples": n, "test_samples": len(yte),
           "patience": patience, "threads": torch.get_num_threads(), "features_s": round(t_feat, 1),
           "svm_s": round(t_svm, 1), "svm_c": scores["svm_c"], "validation": scores["svm_validation"],
           "train_accuracy": scores["train_accuracy"], "test_accuracy": scores["test_accuracy"]}
    print("validation: " + ", ".join(f"C={c:g}: {a:.2f}%" for c, a in out["validation"].items()))
    print(f"C = {out['svm_c']:g}: test {out['test_accuracy']:.2f}% (train {out['train_accuracy']:.2f}%); "
          f"features {t_feat:.1f} s, SVM {t_svm:.1f} s ({args.solver})")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
