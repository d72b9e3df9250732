"""python -m fastalex.train end to end on tiny ImageFolders: clear errors for bad folders and
options, the run's files, exact resumption, --eval-only with 10 crops, two processes under
torchrun, and learning on real images (scikit-learn's scanned digits)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastalex.train import cli, make_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fast_torch():
    """Whole training runs, not kernels: without conftest's deterministic mode and NaN-filled
    allocations (which slow torch's own kernels here several-fold)."""
    prev, prev_fill = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = False
    yield
    torch.use_deterministic_algorithms(prev)
    torch.utils.deterministic.fill_uninitialized_memory = prev_fill


def _folder(root, classes=("a", "b", "c"), per_class=6, size=40, splits=("train", "val")):
    rng = np.random.default_rng(0)
    for split in splits:
        for i, c in enumerate(classes):
            d = Path(root) / split / c
            d.mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                # Each class its own colour, plus noise.
                px = np.clip(rng.normal(60 + 70 * i, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(d / f"{j}.png")
    return Path(root)


def _fails(argv, capsys, *fragments):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + SHORT)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    for f in fragments:
        assert f in err, err
    return err


SMALL = ["--arch", "googlenet", "--variant", "torchvision", "--image-size", "32", "--workers", "0", "--device", "cpu"]
# Appended to the bad calls, so that one the checks let through ends within a step.
SHORT = ["--epochs", "1", "--max-steps", "1"]


def test_data_folder_errors(tmp_path, capsys):
    _fails(["--data", str(tmp_path / "nope")] + SMALL, capsys, "--data", "nope", "no such directory")
    (tmp_path / "file").write_text("x")
    _fails(["--data", str(tmp_path / "file")] + SMALL, capsys, "not a directory")
    d = _folder(tmp_path / "noval", splits=("train",))
    _fails(["--data", str(d)] + SMALL, capsys, "no val/ folder", str(d / "val"))
    d = _folder(tmp_path / "empty")
    for f in (d / "val" / "b").iterdir():
        f.unlink()
    _fails(["--data", str(d)] + SMALL, capsys, "class folder", str(d / "val" / "b"), "holds no images")
    d = _folder(tmp_path / "mismatch")
    (d / "val" / "c").rename(d / "val" / "z")
    _fails(["--data", str(d)] + SMALL, capsys, "same class folders", "only in train/: ['c']", "only in val/: ['z']")
    d = tmp_path / "noclasses"
    (d / "train").mkdir(parents=True)
    (d / "val").mkdir()
    _fails(["--data", str(d)] + SMALL, capsys, "has no class folders")


def test_option_errors(tmp_path, capsys):
    d = _folder(tmp_path / "ok")
    _fails(["--data", str(d), "--arch", "alexnet", "--image-size", "64", "--device", "cpu"], capsys,
           "--image-size", "227 to 234")
    _fails(["--data", str(d), "--arch", "alexnet", "--variant", "torchvision", "--image-size", "32"], capsys,
           "--image-size", "63 or more")
    _fails(["--data", str(d), "--arch", "googlenet", "--image-size", "64"], capsys, "--no-aux")
    _fails(["--data", str(d), "--batch-size", "0"] + SMALL, capsys, "--batch-size must be positive")
    _fails(["--data", str(d), "--lr", "-1"] + SMALL, capsys, "--lr must be positive")
    _fails(["--data", str(d), "--amp"] + SMALL, capsys, "--amp needs --device cuda")
    _fails(["--data", str(d), "--resize", "20"] + SMALL, capsys, "--resize (20) must be at least --image-size (32)")
    _fails(["--data", str(d), "--resume", str(tmp_path / "x.pt")] + SMALL, capsys, "--resume: no checkpoint at")
    _fails(["--data", str(d), "--device", "tpu"] + SMALL[:-2], capsys, "--device must be cpu, cuda or cuda:N")


def _train(d, out, *extra):
    argv = ["--data", str(d), "--out", str(out), "--batch-size", "4", "--log-every", "1", "--seed", "3"] + SMALL
    assert cli.main(argv + list(extra)) == 0
    return torch.load(Path(out) / "last.pt", weights_only=False)


def test_run_files_resume_and_eval_only(tmp_path):
    d = _folder(tmp_path / "data")
    # 18 training images, batch 4: 5 steps per epoch; stop inside the second epoch.
    whole = _train(d, tmp_path / "a", "--max-steps", "7")
    _train(d, tmp_path / "b", "--max-steps", "3")
    resumed = _train(d, tmp_path / "b", "--max-steps", "7", "--resume")
    assert whole["step"] == resumed["step"] == 7 and (whole["epoch"], whole["batch"]) == (1, 2)
    for k, v in whole["model"].items():
        assert torch.equal(v, resumed["model"][k]), k  # exactly: same batches, augmentations, dropout
    for f in ("last.pt", "best.pt", "metrics.csv", "steps.csv", "metrics.png", "eval.json"):
        assert (tmp_path / "a" / f).is_file(), f
    rows_a = list(csv.DictReader(open(tmp_path / "a" / "steps.csv")))
    rows_b = list(csv.DictReader(open(tmp_path / "b" / "steps.csv")))
    assert [r["step"] for r in rows_a] == [str(i) for i in range(1, 8)]
    assert rows_a == rows_b
    epochs = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    assert [r["epoch"] for r in epochs] == ["1", "1.4"] and epochs[0]["val_top1"]
    # Evaluation only, 10 crops per image, from the checkpoint's weights.
    assert cli.main(["--data", str(d), "--out", str(tmp_path / "a"), "--resume", "--eval-only", "--ten-crop",
                     "--batch-size", "4"] + SMALL) == 0
    res = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert res["ten_crop"] is True and res["val_images"] == 18 and 0 <= res["val_top1"] <= 1


def test_torchrun_two_processes(tmp_path):
    d = _folder(tmp_path / "data")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "fastalex.train", "--data", str(d), "--out", str(tmp_path / "out"), "--batch-size", "4",
           "--max-steps", "3", "--log-every", "1"] + SMALL
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    ck = torch.load(tmp_path / "out" / "last.pt", weights_only=False)
    assert ck["step"] == 3 and len(ck["rng"]) == 2  # both ranks' RNG states, for --resume
    # 18 images dealt to 2 ranks at 2 per step: 5 steps per epoch (9 each, the last step of 1).
    assert [r["step"] for r in csv.DictReader(open(tmp_path / "out" / "steps.csv"))] == ["1", "2", "3"]
    res = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert res["val_images"] == 18  # the two ranks' shares reduced: every image once


def test_loss_falls_on_real_images(tmp_path):
    # scikit-learn's scanned digits, 4 classes x 40 images at 32 px; GoogLeNet (torchvision
    # variant, BatchNorm) for 4 epochs of 8 steps. The training objective (main loss + 0.3 x
    # each of the two auxiliary losses) starts at chance, 1.6 x ln 4; the last two epochs' mean
    # must be well below it (seeded; single steps are noisy, epoch means less so).
    make_dataset.build(tmp_path / "digits", size=32, classes=4, per_class=40, seed=0)
    out = tmp_path / "run"
    assert cli.main(["--data", str(tmp_path / "digits"), "--out", str(out), "--epochs", "4", "--batch-size", "16",
                     "--lr", "0.02", "--train-crop", "random", "--seed", "0", "--log-every", "4"] + SMALL) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    losses = [float(r["train_loss"]) for r in rows]
    assert len(losses) == 4
    chance = 1.6 * np.log(4)
    assert abs(losses[0] - chance) < 0.15 * chance, losses
    assert (losses[-1] + losses[-2]) / 2 < 0.8 * chance, losses
