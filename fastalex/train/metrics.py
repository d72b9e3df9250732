"""The run's records: metrics.csv (one row per epoch), steps.csv (one row per --log-every
steps) and metrics.png (loss and accuracy curves), all written by rank 0."""
from __future__ import annotations

import csv
import os
from pathlib import Path

EPOCH_FIELDS = ["epoch", "step", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "seconds"]
STEP_FIELDS = ["step", "epoch", "lr", "loss"]


class CsvLog:
    """Appends rows to a CSV file. `keep_until_step` (resuming) first drops the rows written
    after the checkpoint's step, so a resumed run's file reads as one uninterrupted run."""

    def __init__(self, path, fields, keep_until_step=None):
        self.path, self.fields = Path(path), fields
        rows = read_csv(self.path) if keep_until_step is not None and self.path.exists() else []
        rows = [r for r in rows if int(r["step"]) <= keep_until_step] if rows else []
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({k: _fmt(row.get(k)) for k in self.fields})


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot(out_dir, num_classes: int, title: str = "") -> Path:
    """metrics.png from the run's CSV files: training loss per logged step and validation loss
    per epoch; training and validation top-1 accuracy per epoch against chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    steps = read_csv(out_dir / "steps.csv") if (out_dir / "steps.csv").exists() else []
    epochs = read_csv(out_dir / "metrics.csv") if (out_dir / "metrics.csv").exists() else []
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    if steps:
        ax_loss.plot([int(r["step"]) for r in steps], [float(r["loss"]) for r in steps], lw=0.8,
                     label="train (per logged step)")
    ep = [r for r in epochs if r["val_loss"]]
    if ep:
        ax_loss.plot([int(r["step"]) for r in ep], [float(r["val_loss"]) for r in ep], "o-", ms=3,
                     label="validation (per epoch)")
        ax_acc.plot([int(r["step"]) for r in ep], [100 * float(r["val_top1"]) for r in ep], "o-", ms=3,
                    label="validation top-1")
    tr = [r for r in epochs if r["train_top1"]]
    if tr:
        ax_acc.plot([int(r["step"]) for r in tr], [100 * float(r["train_top1"]) for r in tr], "s--", ms=3,
                    label="train top-1 (augmented)")
    ax_acc.axhline(100 / num_classes, color="grey", ls=":", label=f"chance ({100 / num_classes:.0f}%)")
    ax_loss.set(xlabel="optimizer step", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="optimizer step", ylabel="%", ylim=(0, 100), title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = out_dir / "metrics.png"
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
