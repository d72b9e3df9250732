"""``python -m fastalex.train``: train or evaluate AlexNet / GoogLeNet on an ImageFolder, on one
process or data-parallel under ``torchrun --nproc_per_node N -m fastalex.train ...``.

Unset options take the chosen architecture's paper recipe (fastalex/train/recipes.py)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fastalex.train import amp, checkpoint, data, distributed, loop, metrics, nets
from fastalex.train.recipes import ARCHS, VARIANTS, Recipe, default_resize, recipe


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastalex.train",
        description="Train AlexNet or GoogLeNet (fastalex ops) on an ImageFolder DIR/{train,val}/<class>/<image>. "
                    "Unset options follow the architecture's paper; under torchrun every process takes "
                    "--batch-size / N samples per step.")
    a = p.add_argument
    a("--data", required=True, metavar="DIR", help="ImageFolder root with train/ and val/, one sub-folder per class")
    a("--arch", choices=ARCHS, default="alexnet")
    a("--variant", choices=VARIANTS, default="paper")
    a("--epochs", type=int, help="epochs to train (default: 90)")
    a("--max-steps", type=int, metavar="N", help="stop after N optimizer steps in all (smoke runs)")
    a("--batch-size", type=int, help="global batch (default: AlexNet 128, GoogLeNet 32)")
    a("--lr", type=float, help="initial learning rate (default 0.01)")
    a("--momentum", type=float, help="SGD momentum (default 0.9)")
    a("--weight-decay", type=float, help="default: AlexNet 5e-4, GoogLeNet 2e-4")
    a("--image-size", type=int, help="crop size (default: paper AlexNet 227, otherwise 224)")
    a("--resize", type=int, help="short side images are scaled to before cropping (default 256 at the default "
                                 "crop size, else the same 256:224 ratio)")
    a("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    a("--amp", action=argparse.BooleanOptionalAction, default=False, help="float16 autocast (CUDA only)")
    a("--workers", type=int, default=min(4, torch.get_num_threads()), help="data loading processes per rank")
    a("--out", metavar="DIR", help="checkpoints, metrics.csv, steps.csv, metrics.png (default runs/ARCH-VARIANT)")
    a("--resume", nargs="?", const="last", metavar="CKPT",
      help="continue from CKPT (default OUT/last.pt); with --eval-only, the weights to evaluate")
    a("--eval-only", action="store_true", help="evaluate on val/ and exit")
    a("--ten-crop", action=argparse.BooleanOptionalAction, default=None,
      help="final evaluation on 10 crops, softmax averaged (default: on for AlexNet)")
    a("--train-crop", choices=("random", "random_resized"),
      help="random: a random crop of the resized image (AlexNet's, the default for it); random_resized: 8%%-100%% of "
           "the area, aspect 3/4..4/3 (GoogLeNet's)")
    a("--pca-lighting", action=argparse.BooleanOptionalAction, default=None,
      help="AlexNet's PCA colour augmentation (default: on for AlexNet)")
    a("--aux", action=argparse.BooleanOptionalAction, default=True,
      help="GoogLeNet's auxiliary classifiers (loss weight 0.3)")
    a("--plateau-patience", type=int, help="AlexNet: epochs without a better validation error before lr /= 10 "
                                           "(default 5)")
    a("--stats-images", type=int, default=10000, help="training images sampled for the colour statistics")
    a("--log-every", type=int, default=10, metavar="N", help="steps between rows of steps.csv")
    a("--seed", type=int, default=0)
    a("--progress", action=argparse.BooleanOptionalAction, default=None, help="tqdm bars (default: on a terminal)")
    return p


@dataclass
class Config:
    args: argparse.Namespace
    recipe: Recipe
    classes: list
    out: Path
    resume: Path | None
    world: int
    hp: dict = field(default_factory=dict)  # the resolved hyper-parameters


def _positive(args, name, value, allow_zero=False):
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"--{name.replace('_', '-')} must be {'>= 0' if allow_zero else 'positive'}, got {value}")


def resolve(args) -> Config:
    """The run's settings: the recipe's defaults under the given options, every option checked.
    Raises ValueError (data.DataError for the data folder) with a message naming the option."""
    rec = recipe(args.arch, args.variant)
    if args.train_crop:
        rec = dataclasses.replace(rec, train_crop=args.train_crop)
    for name in ("epochs", "max_steps", "batch_size", "lr", "image_size", "resize", "plateau_patience",
                 "stats_images", "log_every"):
        _positive(args, name, getattr(args, name))
    for name in ("momentum", "weight_decay", "workers"):
        _positive(args, name, getattr(args, name), allow_zero=True)
    hp = dict(epochs=args.epochs or rec.epochs, batch_size=args.batch_size or rec.batch_size,
              lr=args.lr or rec.lr, momentum=rec.momentum if args.momentum is None else args.momentum,
              weight_decay=rec.weight_decay if args.weight_decay is None else args.weight_decay,
              image_size=args.image_size or rec.image_size,
              ten_crop=rec.ten_crop if args.ten_crop is None else args.ten_crop,
              pca_lighting=rec.pca_lighting if args.pca_lighting is None else args.pca_lighting,
              plateau_patience=args.plateau_patience or rec.plateau_patience,
              aux=args.aux and args.arch == "googlenet", train_crop=args.train_crop or rec.train_crop)
    hp["resize"] = args.resize or default_resize(hp["image_size"], rec)
    if hp["resize"] < hp["image_size"]:
        raise ValueError(f"--resize ({hp['resize']}) must be at least --image-size ({hp['image_size']})")
    err = nets.image_size_error(args.arch, args.variant, hp["image_size"], hp["aux"])
    if err:
        raise ValueError(f"--image-size: {err}")

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device is available")
    if args.amp and dev.type != "cuda":
        raise ValueError("--amp needs --device cuda (fastalex's CPU kernels compute in float32 and float64)")

    world = distributed.launched_world()
    if hp["batch_size"] % world:
        raise ValueError(f"--batch-size ({hp['batch_size']}) must be divisible by the number of processes ({world})")
    classes = data.check_folder(args.data)
    out = Path(args.out or f"runs/{args.arch}-{args.variant}")
    resume = None
    if args.resume is not None:
        resume = out / "last.pt" if args.resume == "last" else Path(args.resume)
        if not resume.is_file():
            raise ValueError(f"--resume: no checkpoint at {resume}")
    return Config(args, rec, classes, out, resume, world, hp)


def _seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Progress:
    def __init__(self, enabled):
        self.enabled = enabled

    def __call__(self, iterable, **kw):
        if not self.enabled:
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, dynamic_ncols=True, leave=False, **kw)


def run(cfg: Config) -> dict:
    """Trains (or evaluates) as `cfg` says. Returns the last validation metrics."""
    args, rec, hp = cfg.args, cfg.recipe, cfg.hp
    ctx = distributed.setup(args.device)
    try:
        return _run(cfg, ctx)
    finally:
        distributed.teardown(ctx)


def _log(ctx, *msg):
    if ctx.main:
        print(*msg, file=sys.stderr, flush=True)


def _run(cfg: Config, ctx: distributed.Context) -> dict:
    args, rec, hp = cfg.args, cfg.recipe, cfg.hp
    ckpt = checkpoint.load(cfg.resume) if cfg.resume else None
    if ckpt is not None:
        saved = ckpt["hp"]
        for key in ("image_size", "aux"):
            if key in saved and saved[key] != hp[key]:
                raise ValueError(f"--resume {cfg.resume}: the checkpoint was trained with {key}={saved[key]}, "
                                 f"this run asks for {hp[key]}")
        if ckpt["classes"] != cfg.classes:
            raise ValueError(f"--resume {cfg.resume}: the checkpoint's classes differ from {args.data}'s")
        if "optimizer" not in ckpt and not args.eval_only:
            raise ValueError(f"--resume {cfg.resume} holds weights only; resume training from last.pt")
    if ctx.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
    progress = _Progress(ctx.main and (args.progress if args.progress is not None else sys.stderr.isatty()))

    # The same initial weights on every rank (DDP broadcasts rank 0's anyway), then a different
    # stream per rank for dropout and augmentation.
    _seed_all(args.seed)
    num_classes = len(cfg.classes)
    model = nets.build(args.arch, args.variant, num_classes, hp["aux"]).to(ctx.device)
    _seed_all(args.seed + 7919 * ctx.rank)

    if ckpt is not None:
        stats = ckpt["stats"]
    else:
        train_set = data.image_folder(args.data, "train", None)
        stats = None
        if ctx.main:
            _log(ctx, f"colour statistics from {min(len(train_set), args.stats_images)} training images ...")
            stats = data.image_stats([p for p, _ in train_set.samples], args.stats_images, args.seed)
        stats = distributed.broadcast_object(stats, ctx)

    autocast = scaler = None
    if args.amp:
        amp.register_autocast_rules()
        autocast, scaler = amp.autocast(), amp.grad_scaler()

    pin = ctx.device.type == "cuda"
    per_proc = hp["batch_size"] // ctx.world
    val_set = data.image_folder(args.data, "val", data.eval_transform(rec, hp["image_size"], hp["resize"], stats, False))
    val_loader = data.loader(val_set, data.ShardSampler(len(val_set), ctx.rank, ctx.world, shuffle=False, pad=False),
                             per_proc, args.workers, args.seed, pin)

    def validate(ten_crop=False):
        loader_ = val_loader
        if ten_crop:
            vs = data.image_folder(args.data, "val", data.eval_transform(rec, hp["image_size"], hp["resize"], stats,
                                                                         True))
            loader_ = data.loader(vs, data.ShardSampler(len(vs), ctx.rank, ctx.world, shuffle=False, pad=False),
                                  max(1, per_proc // 4), args.workers, args.seed, pin)
        s = distributed.all_reduce_sum(loop.evaluate(model, loader_, ctx.device, autocast,
                                                     lambda it: progress(it, desc="val")), ctx)
        n = max(s[3].item(), 1)
        return {"val_loss": s[0].item() / n, "val_top1": s[1].item() / n, "val_top5": s[2].item() / n,
                "val_images": int(s[3].item()), "ten_crop": ten_crop}

    if args.eval_only:
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
        else:
            _log(ctx, "--eval-only without --resume: evaluating freshly initialised weights")
        res = validate(hp["ten_crop"])
        if ctx.main:
            (cfg.out / "eval.json").write_text(json.dumps(res, indent=1))
        _log(ctx, json.dumps(res))
        return res

    train_set = data.image_folder(args.data, "train",
                                  data.train_transform(rec, hp["image_size"], hp["resize"], stats, hp["pca_lighting"]))
    sampler = data.ShardSampler(len(train_set), ctx.rank, ctx.world, shuffle=True, seed=args.seed)
    batches_per_epoch = math.ceil(len(sampler) / per_proc)

    ddp_model = distributed.wrap(model, ctx)
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                                weight_decay=hp["weight_decay"])
    if rec.schedule == "plateau":
        # The paper divides by 10 when the validation error stops improving, three times.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=rec.plateau_factor, patience=hp["plateau_patience"],
            min_lr=hp["lr"] * rec.plateau_factor ** rec.plateau_reductions * 0.999)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=rec.step_epochs, gamma=rec.step_gamma)

    epoch = batch = step = 0
    best = -1.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        epoch, batch, step, best = ckpt["epoch"], ckpt["batch"], ckpt["step"], ckpt["best_top1"]
        states = ckpt["rng"]
        if len(states) == ctx.world:
            checkpoint.set_rng_state(states[ctx.rank])
        else:
            _log(ctx, f"note: the checkpoint holds {len(states)} ranks' RNG states, this run has {ctx.world}; "
                      f"continuing with fresh streams")
        _log(ctx, f"resumed from {cfg.resume} at epoch {epoch}, batch {batch}, step {step}")

    log_steps = metrics.CsvLog(cfg.out / "steps.csv", metrics.STEP_FIELDS, step) if ctx.main else None
    log_epochs = metrics.CsvLog(cfg.out / "metrics.csv", metrics.EPOCH_FIELDS, step) if ctx.main else None
    _log(ctx, f"{args.arch} ({args.variant}), {num_classes} classes, {len(train_set)} training / {len(val_set)} "
              f"validation images, {ctx.world} process(es) on {ctx.device}; " + json.dumps(hp))

    aux_weight = rec.aux_weight if hp["aux"] else 0.0
    res = {}
    recent = []
    stop = args.max_steps is not None and step >= args.max_steps
    while epoch < hp["epochs"] and not stop:
        t0 = time.time()
        sampler.set_epoch(epoch, skip=batch * per_proc)
        train_loader = data.loader(train_set, sampler, per_proc, args.workers, args.seed, pin)
        sums = torch.zeros(3, dtype=torch.float64)  # loss x n, top-1 hits, n
        model.train()
        bar = progress(train_loader, desc=f"epoch {epoch + 1}/{hp['epochs']}", initial=batch, total=batches_per_epoch)
        for images, targets in bar:
            images = images.to(ctx.device, non_blocking=True)
            targets = targets.to(ctx.device, non_blocking=True)
            loss, logits = loop.train_step(ddp_model, optimizer, images, targets, aux_weight, scaler, autocast)
            step += 1
            batch += 1
            lv = loss.item()
            sums += torch.tensor([lv * len(targets), loop.topk_correct(logits, targets, (1,))[0], len(targets)],
                                 dtype=torch.float64)
            recent.append(lv)
            lr = optimizer.param_groups[0]["lr"]
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{lv:.3f}", lr=f"{lr:.3g}")
            if step % args.log_every == 0 and ctx.main:
                log_steps.write({"step": step, "epoch": epoch + batch / batches_per_epoch, "lr": lr,
                                 "loss": sum(recent) / len(recent)})
                recent = []
            if not math.isfinite(lv):
                raise FloatingPointError(f"training loss is {lv} at step {step}; lower --lr")
            if args.max_steps is not None and step >= args.max_steps:
                stop = True
                break
        sums = distributed.all_reduce_sum(sums, ctx)
        res = validate()
        if batch >= batches_per_epoch:  # a whole epoch: the schedule moves, the next one starts
            if rec.schedule == "plateau":
                scheduler.step(1.0 - res["val_top1"])
            else:
                scheduler.step()
            epoch, batch = epoch + 1, 0
        n = max(sums[2].item(), 1)
        row = {"epoch": epoch + batch / batches_per_epoch, "step": step, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": sums[0].item() / n, "train_top1": sums[1].item() / n, "seconds": time.time() - t0,
               **res}
        _log(ctx, "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        rngs = _gather_rng(ctx)
        if ctx.main:
            log_epochs.write(row)
            payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                       "epoch": epoch, "batch": batch, "step": step, "best_top1": max(best, res["val_top1"]),
                       "rng": rngs, "args": vars(args), "hp": hp, "recipe": rec.as_dict(), "classes": cfg.classes,
                       "stats": stats}
            checkpoint.save(cfg.out / "last.pt", payload)
            if res["val_top1"] > best:
                checkpoint.save(cfg.out / "best.pt", {k: payload[k] for k in ("model", "epoch", "step", "best_top1",
                                                                              "args", "hp", "recipe", "classes",
                                                                              "stats")})
            metrics.plot(cfg.out, num_classes, f"{args.arch} ({args.variant}) on {Path(args.data).name}")
        best = max(best, res["val_top1"])
        distributed.barrier(ctx)

    if hp["ten_crop"] and res:
        res = validate(True)
        _log(ctx, "final 10-crop evaluation: " + json.dumps(res))
    if ctx.main and res:
        (cfg.out / "eval.json").write_text(json.dumps({**res, "step": step}, indent=1))
    return res


def _gather_rng(ctx):
    state = checkpoint.rng_state()
    if not ctx.distributed:
        return [state]
    out = [None] * ctx.world
    torch.distributed.all_gather_object(out, state)
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = resolve(args)
    except ValueError as e:  # DataError included
        parser.error(str(e))
    try:
        run(cfg)
    except (ValueError, FloatingPointError) as e:
        print(f"python -m fastalex.train: error: {e}", file=sys.stderr)
        return 1
    return 0
