"""One optimizer step, and evaluation (centre crop or the AlexNet paper's 10 crops)."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def split_outputs(output):
    """(logits, [auxiliary logits]) from a network's output: GoogLeNet returns
    GoogLeNetOutputs(logits, aux_logits2, aux_logits1) in training mode, a tensor otherwise."""
    if isinstance(output, tuple):
        return output[0], [a for a in output[1:] if a is not None]
    return output, []


def loss_fn(output, target, aux_weight: float = 0.0):
    """Cross-entropy of the logits, plus aux_weight x each auxiliary classifier's (GoogLeNet
    paper, section 5: weight 0.3, discarded at inference). Returns (loss, logits)."""
    logits, aux = split_outputs(output)
    loss = F.cross_entropy(logits, target)
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a, target)
    return loss, logits


def train_step(model, optimizer, images, targets, aux_weight: float = 0.0, scaler=None, autocast=None):
    """Forward, loss, backward, optimizer step. Returns (loss, logits), both detached."""
    optimizer.zero_grad(set_to_none=True)
    with autocast if autocast is not None else contextlib.nullcontext():
        loss, logits = loss_fn(model(images), targets, aux_weight)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), logits.detach()


def topk_correct(logits_or_probs, targets, ks=(1, 5)):
    """Number of samples whose target is among the k highest scores, per k (k capped at the
    class count)."""
    top = logits_or_probs.topk(min(max(ks), logits_or_probs.shape[1]), dim=1).indices
    hit = top == targets.view(-1, 1)
    return [int(hit[:, :k].any(1).sum()) for k in ks]


@torch.no_grad()
def evaluate(model, loader, device, autocast=None, progress=None):
    """Sums over this process's share of the loader: [loss_sum, top1, top5, count]. Ten-crop
    batches (N, 10, 3, H, W) average the softmax over the crops (AlexNet paper, section 4.1);
    the loss is then the negative log of the averaged probability."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)
    for images, targets in (progress(loader) if progress else loader):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with autocast if autocast is not None else contextlib.nullcontext():
            if images.dim() == 5:
                n, crops = images.shape[:2]
                logits = model(images.flatten(0, 1)).float()
                probs = logits.softmax(1).view(n, crops, -1).mean(1)
                loss = F.nll_loss(probs.clamp_min(1e-12).log(), targets, reduction="sum")
                scores = probs
            else:
                scores = model(images).float()
                loss = F.cross_entropy(scores, targets, reduction="sum")
        top1, top5 = topk_correct(scores, targets)
        sums += torch.tensor([float(loss), top1, top5, targets.shape[0]], dtype=torch.float64)
    model.train(was_training)
    return sums
