"""Checkpoints that let --resume continue a run: model, optimizer, scheduler and gradient
scaler states, the position (epoch, batch within it, optimizer step), the arguments, the colour
statistics, and every rank's RNG states."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

FORMAT = 1


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(path, payload: dict):
    """torch.save through a temporary file, so an interrupted write never leaves a torn
    checkpoint where the last good one was."""
    tmp = f"{path}.tmp"
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load(path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise ValueError(f"--resume {path}: not a fastalex.train checkpoint")
    return ckpt
