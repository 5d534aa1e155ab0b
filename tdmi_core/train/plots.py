"""Training curves to PNG (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

logger = logging.getLogger(__name__)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open("r", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _floats(rows: list[dict[str, str]], key: str) -> list[float]:
    out = []
    for row in rows:
        try:
            out.append(float(row.get(key, "") or "nan"))
        except ValueError:
            out.append(float("nan"))
    return out


def plot_training_curves(steps_csv: str | Path, epochs_csv: str | Path, out_png: str | Path) -> Path:
    """Plot per-step losses (total, heatmap, MI) and per-epoch validation metrics (PCK, mAP).

    Args:
        steps_csv: CSV with columns step, loss, heatmap, mi (written by the trainer).
        epochs_csv: CSV with columns epoch, train_loss, val_pck, val_map.
        out_png: Output image path.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    steps = _read_csv(Path(steps_csv))
    epochs = _read_csv(Path(epochs_csv))
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        x = _floats(steps, "step")
        for key, label in (("loss", "total L"), ("heatmap", "L_H"), ("mi", "L_MI")):
            ax_loss.plot(x, _floats(steps, key), label=label, linewidth=1)
        ax_loss.set_yscale("symlog", linthresh=1e-4)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training loss")
    if ax_loss.get_legend_handles_labels()[0]:
        ax_loss.legend(loc="upper right")
    if epochs:
        x = _floats(epochs, "epoch")
        # PCK is a fraction, mAP a percentage: both drawn in percent; epochs without validation are skipped
        for key, label, factor in (("val_pck", "PCK@0.2, box-normalised (val)", 100.0), ("val_map", "mAP (val)", 1.0)):
            points = [(e, v * factor) for e, v in zip(x, _floats(epochs, key)) if not math.isnan(v)]
            if points:
                ax_metric.plot(*zip(*points), marker="o", label=label)
        ax_metric.set_ylabel("%")
        if ax_metric.get_legend_handles_labels()[0]:
            ax_metric.legend(loc="lower right")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("validation")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
