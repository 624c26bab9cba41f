"""Steps shared by the reproduction protocols: the STDP stage of a layer, with its
rate-doubling schedule and a checkpoint after every epoch."""
from __future__ import annotations

from ..learners import STDP
from ..learning import RateDoubling

__all__ = ["stdp_stage"]


def stdp_stage(learner: STDP, inputs, cfg, layer: int, state: dict, save, progress: bool = False, log=print,
               doubling: bool = True, name: str = "conv") -> None:
    """Train one layer by STDP for the epochs ``state["done"][layer]`` says are left.

    ``cfg`` supplies ``epochs[layer]``, ``stdp_rates``, ``doubling_every``, ``max_a_plus``,
    ``doubling_ratio``, ``chunk``, ``stdp_mode`` and ``stdp_batch``; ``state`` holds
    ``done[layer]`` (epochs finished), ``sched[layer]`` (the rate schedule's state) and
    ``stdp_history``, and is updated and saved (``save()``) after every epoch, so a resumed run
    continues with the same rates and ends with the same weights.

    Args:
        learner: the layer's :class:`snnlab.learners.STDP`.
        inputs: its input spike times, before its padding.
        doubling: the 500-sample rate doubling (else fixed rates).
        name: the layer's name in logs and history.
    """
    schedule = RateDoubling(cfg.stdp_rates[0], cfg.stdp_rates[1], cfg.doubling_every if doubling else None,
                            cfg.max_a_plus, cfg.doubling_ratio)
    if state["sched"][layer]:
        schedule.load_state_dict(state["sched"][layer])

    def on_epoch(rec):
        state["sched"][layer] = schedule.state_dict()
        state["done"][layer] += 1
        entry = {"layer": name, "epoch": state["done"][layer], "winners_per_sample": rec["winners_per_sample"],
                 "mean_w_1_minus_w": rec["mean_w_1_minus_w"], "a_plus": rec["a_plus"]}
        state.setdefault("stdp_history", []).append(entry)
        log(f"{name} epoch {entry['epoch']}/{cfg.epochs[layer]}: {rec['winners_per_sample']:.2f} winners/sample, "
            f"a+ = {rec['a_plus']:.4f}, convergence mean w(1-w) = {rec['mean_w_1_minus_w']:.4f}")
        save()

    learner.fit(inputs, cfg.epochs[layer] - state["done"][layer], schedule, cfg.stdp_mode, cfg.stdp_batch, cfg.chunk,
                progress, on_epoch, name)
