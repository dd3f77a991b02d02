"""Training plots as PNG bytes (matplotlib, Agg backend; Django-free)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def predicted_vs_true(true, predicted, *, title: str, baseline=None, label: str = "ensemble median") -> bytes:
    fig, ax = plt.subplots(figsize=(5, 5))
    if baseline is not None:
        ax.scatter(true, baseline, s=6, alpha=0.35, color="tab:gray", label="axial-ratio baseline")
    ax.scatter(true, predicted, s=6, alpha=0.6, color="tab:blue", label=label)
    ax.plot([45, 90], [45, 90], color="k", lw=1)
    ax.set(xlim=(43, 92), ylim=(43, 92), xlabel="true inclination (deg)", ylabel="predicted (deg)", title=title)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def residuals(true, predicted, *, title: str) -> bytes:
    true, predicted = np.asarray(true), np.asarray(predicted)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.scatter(true, predicted - true, s=6, alpha=0.6)
    a.axhline(0, color="k", lw=1)
    for level in (-10, -5, 5, 10):
        a.axhline(level, color="tab:red", lw=0.6, ls=":")
    a.set(xlabel="true inclination (deg)", ylabel="predicted - true (deg)", title=title)
    b.hist(predicted - true, bins=40, color="tab:blue")
    b.set(xlabel="predicted - true (deg)", ylabel="images")
    return _png(fig)


def learning_curves(histories: dict[str, dict[str, list[float]]], *, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if history.get(key):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=f"{name} {key}")
    ax.set(xlabel="epoch", ylabel="loss", title=title, yscale="log")
    ax.legend(fontsize=7)
    return _png(fig)


def predicted_vs_consensus(consensus, predicted, *, title: str, bins: list[dict] | None = None) -> bytes:
    """One survey's evaluation: each galaxy's prediction against its consensus label, and the bias per bin."""
    consensus, predicted = np.asarray(consensus), np.asarray(predicted)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1.15, 1]})
    a.scatter(consensus, predicted, s=5, alpha=0.5, color="tab:blue")
    a.plot([45, 90], [45, 90], color="k", lw=1)
    for offset in (-10, 10):
        a.plot([45, 90], [45 + offset, 90 + offset], color="tab:red", lw=0.6, ls=":")
    a.set(xlim=(43, 92), ylim=(43, 92), xlabel="consensus inclination (deg)", ylabel="ensemble (deg)", title=title)
    if bins:
        centres = [(row["lo"] + row["hi"]) / 2 for row in bins]
        b.bar(centres, [row["bias"] for row in bins], width=4, color="tab:orange", label="bias")
        b.plot(centres, [row["rms"] for row in bins], "o-", color="tab:blue", label="RMS")
        b.axhline(0, color="k", lw=1)
        b.legend(fontsize=8)
    b.set(xlabel="consensus inclination (deg)", ylabel="deg", title="per 5-deg bin")
    return _png(fig)


def before_after(true, before, after, *, title: str) -> bytes:
    """An adaptation's held-out labels of its survey: the active ensemble's answers and the adapted one's."""
    true = np.asarray(true)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, before, s=8, alpha=0.5, color="tab:gray", label="active ensemble (before)")
    ax.scatter(true, after, s=8, alpha=0.7, color="tab:blue", label="adapted members (after)")
    ax.plot([45, 90], [45, 90], color="k", lw=1)
    ax.set(xlim=(43, 92), ylim=(43, 92), xlabel="consensus inclination (deg)", ylabel="predicted (deg)", title=title)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)
