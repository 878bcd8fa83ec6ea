"""Training loop of one cascade net: Adadelta, cross-entropy, validation split, early stopping."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mslesion.models.network import CascadeNet
from mslesion.models.training.augment import augment_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one net's training (defaults follow the seed, shortened for CPU)."""

    batch_size: int = 128
    max_epochs: int = 30
    patience: int = 5
    validation_fraction: float = 0.25
    learning_rate: float = 1.0  # Adadelta's default, as in the seed
    intensity_jitter: float = 0.1
    seed: int = 42
    progress: bool = True


@dataclass
class TrainResult:
    """What one net's training produced."""

    net: CascadeNet
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    n_val = max(1, round(n * fraction)) if n > 1 else 0
    return order[n_val:], order[:n_val]


def _evaluate(net: CascadeNet, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    net.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = net(x[i : i + batch])
            loss += float(F.cross_entropy(logits, y[i : i + batch], reduction="sum"))
            correct += int((logits.argmax(1) == y[i : i + batch]).sum())
    return loss / max(1, len(x)), correct / max(1, len(x))


def train_net(
    net: CascadeNet, patches: np.ndarray, labels: np.ndarray, config: TrainConfig, desc: str
) -> TrainResult:
    """Train ``net`` on patches (N, C, 11, 11, 11) with labels (N,); keep the best epoch."""
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    train_idx, val_idx = _split(len(labels), config.validation_fraction, rng)
    x = torch.from_numpy(patches)
    y = torch.from_numpy(labels)
    x_val, y_val = x[val_idx], y[val_idx]
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.Adadelta(params, lr=config.learning_rate)
    best = TrainResult(copy.deepcopy(net), 0, math.inf, 0.0)
    stale = 0
    for epoch in range(1, config.max_epochs + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(train_idx))
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"{desc} epoch {epoch}",
            disable=not config.progress,
            leave=False,
        )
        running = 0.0
        for step, i in enumerate(bar, start=1):
            idx = order[i : i + config.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb = augment_batch(x[idx], gen, config.intensity_jitter)
            loss = F.cross_entropy(net(xb), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.4f}")
        val_loss, val_acc = _evaluate(net, x_val, y_val, 1024)
        best.history.append(
            {
                "epoch": epoch,
                "train_loss": running / max(1, len(bar)),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
            }
        )
        line = (
            f"{desc} epoch {epoch}: train loss {running / max(1, len(bar)):.4f}, "
            f"val loss {val_loss:.4f}, val acc {val_acc:.3f}"
        )
        tqdm.write(line) if config.progress else log.info(line)
        if val_loss < best.best_val_loss:
            best.net, best.best_epoch = copy.deepcopy(net), epoch
            best.best_val_loss, best.best_val_accuracy = val_loss, val_acc
            stale = 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    best.net.eval()
    return best
