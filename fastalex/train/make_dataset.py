"""``python -m fastalex.train.make_dataset OUT``: a small ImageFolder of real images that needs
no download -- scikit-learn's scanned handwritten digits (1,797 8x8 grey images, 10 classes,
from the UCI "Optical Recognition of Handwritten Digits" set, shipped inside scikit-learn),
scaled up to --size pixels (bicubic) and split per class into OUT/train/<digit>/ and
OUT/val/<digit>/ (a seeded, stratified split)."""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image


def build(out, size: int = 64, val_fraction: float = 0.25, classes: int = 10, per_class: int | None = None,
          seed: int = 0) -> dict:
    """Writes the ImageFolder; returns {split: image count}."""
    from sklearn.datasets import load_digits

    out = Path(out)
    for split in ("train", "val"):
        if (out / split).exists():
            raise FileExistsError(f"OUT {out}: {out / split} already exists (choose a new folder)")
    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 grey levels -> 0..255
    rng = random.Random(seed)
    counts = {"train": 0, "val": 0}
    for c in range(classes):
        idx = [i for i in range(len(pixels)) if digits.target[i] == c]
        rng.shuffle(idx)
        if per_class is not None:
            idx = idx[:per_class]
        n_val = max(1, round(len(idx) * val_fraction))
        for split, part in (("val", idx[:n_val]), ("train", idx[n_val:])):
            folder = out / split / str(c)
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray(pixels[i], "L").resize((size, size), Image.BICUBIC).save(folder / f"{i:04d}.png")
            counts[split] += len(part)
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastalex.train.make_dataset", description=__doc__.split("\n\n")[0])
    p.add_argument("out", metavar="OUT", help="folder to create (its train/ and val/ must not exist)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--val-fraction", type=float, default=0.25, help="share of each class held out (default 0.25)")
    p.add_argument("--classes", type=int, default=10, help="use the digits 0 .. N-1 (default 10)")
    p.add_argument("--per-class", type=int, help="at most this many images per class (default: all, ~180)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.size < 8:
        p.error(f"--size must be at least 8, got {args.size}")
    if not 0 < args.val_fraction < 1:
        p.error(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if not 2 <= args.classes <= 10:
        p.error(f"--classes must be in 2..10, got {args.classes}")
    if args.per_class is not None and args.per_class < 2:
        p.error(f"--per-class must be at least 2, got {args.per_class}")
    try:
        counts = build(args.out, args.size, args.val_fraction, args.classes, args.per_class, args.seed)
    except FileExistsError as e:
        p.error(str(e))
    print(f"{args.out}: {counts['train']} training and {counts['val']} validation images, {args.classes} classes, "
          f"{args.size}x{args.size}")


if __name__ == "__main__":
    main()
