"""fastalex.train.data: the colour statistics and PCA lighting against numpy, the AlexNet
paper's 10 test crops, and the training crops' sizes."""
import numpy as np
import torch
from PIL import Image

from fastalex.train import data, recipes


def _images(tmp_path, n=5, size=20):
    rng = np.random.default_rng(0)
    paths, pixels = [], []
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])  # correlated channels
    for i in range(n):
        px = np.clip(rng.normal(0, 25, (size, size, 3)) @ mix + [120, 90, 60], 0, 255).astype(np.uint8)
        p = tmp_path / f"{i}.png"
        Image.fromarray(px).save(p)
        paths.append(str(p))
        pixels.append(px.reshape(-1, 3).astype(np.float64))
    return paths, np.concatenate(pixels)


def test_image_stats_match_numpy(tmp_path):
    paths, px = _images(tmp_path)
    s = data.image_stats(paths, side=64)  # images smaller than side: every pixel counts
    np.testing.assert_allclose(s["mean"], px.mean(0), rtol=1e-10)
    cov = np.cov(px.T, bias=True)
    np.testing.assert_allclose(s["std"], np.sqrt(np.diag(cov)), rtol=1e-8)
    vecs, vals = np.array(s["eigvec"]), np.array(s["eigval"])
    assert list(vals) == sorted(vals, reverse=True)
    np.testing.assert_allclose(vecs @ np.diag(vals) @ vecs.T, cov, rtol=1e-8, atol=1e-8)
    assert s["images"] == 5
    assert data.image_stats(paths, max_images=2)["images"] == 2


def test_lighting_adds_the_pca_shift_to_every_pixel():
    vals = [400.0, 25.0, 4.0]
    vecs = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    light = data.Lighting(vals, vecs.tolist(), std=0.1)
    x = torch.rand(3, 5, 6) * 255
    torch.manual_seed(7)
    y = light(x)
    torch.manual_seed(7)
    alpha = torch.randn(3).double().numpy() * 0.1
    shift = vecs @ (alpha * np.sqrt(vals))
    np.testing.assert_allclose((y - x).double().numpy(), np.broadcast_to(shift[:, None, None], x.shape), atol=1e-3)
    # One draw per image: every pixel moves by the same colour.
    assert (y - x).flatten(1).std(1).max() < 1e-3


def test_ten_crop_and_train_crops():
    stats = {"mean": [10.0, 20.0, 30.0], "std": [2.0, 4.0, 5.0], "eigval": [1.0, 1.0, 1.0],
             "eigvec": np.eye(3).tolist()}
    rec = recipes.recipe("alexnet", "paper")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    crops = data.eval_transform(rec, 32, 36, stats, ten_crop=True)(img)
    assert crops.shape == (10, 3, 32, 32)
    # Crop 0: the top-left of the 36 x 36 centre of the image scaled to short side 36; crops
    # 5-9 are the five crops of the mirrored square (crop 5 its top-left), mean subtracted.
    from torchvision.transforms import functional as TF

    square = TF.pil_to_tensor(TF.center_crop(TF.resize(img, 36), 36)).float()
    mean = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1)
    torch.testing.assert_close(crops[0], square[:, :32, :32] - mean)
    torch.testing.assert_close(crops[3], square[:, 4:, 4:] - mean)
    torch.testing.assert_close(crops[5], square.flip(2)[:, :32, :32] - mean)
    centre = data.eval_transform(rec, 32, 36, stats, ten_crop=False)(img)
    torch.testing.assert_close(centre, crops[4])
    tv = recipes.recipe("googlenet", "torchvision")
    x = data.train_transform(tv, 24, 28, stats, lighting=False)(img)
    assert x.shape == (3, 24, 24)
    x = data.train_transform(rec, 32, 36, stats, lighting=True)(img)
    assert x.shape == (3, 32, 32)
