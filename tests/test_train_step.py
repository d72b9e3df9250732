"""Training steps: a paper-AlexNet SGD step with fastalex's ops equals its reference twin's
(plain torch ops), and the GoogLeNet loss adds the auxiliary losses with weight 0.3."""
import copy

import torch
import torch.nn.functional as F

from fastalex import models
from fastalex.nn import use_reference
from fastalex.train import loop


def _sgd(model):
    # The AlexNet paper's optimizer (papers.md: momentum 0.9, weight decay 5e-4, lr 0.01).
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def test_paper_alexnet_step_equals_reference_twin():
    torch.manual_seed(0)
    fast = models.alexnet("paper", num_classes=10)
    ref = use_reference(copy.deepcopy(fast))
    before = {k: v.clone() for k, v in fast.state_dict().items()}
    x = torch.randn(4, 3, 227, 227) * 50  # 0..255-scale pixels minus the mean
    y = torch.tensor([0, 3, 7, 9])
    opt_f, opt_r = _sgd(fast), _sgd(ref)
    # Two steps, so the second one runs on momentum as well; dropout draws the same masks in
    # both networks from the same seed.
    for i in range(2):
        torch.manual_seed(100 + i)
        loss_f, logits_f = loop.train_step(fast, opt_f, x, y)
        torch.manual_seed(100 + i)
        loss_r, logits_r = loop.train_step(ref, opt_r, x, y)
        torch.testing.assert_close(logits_f, logits_r, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(loss_f, loss_r, rtol=1e-5, atol=1e-5)
    moved = 0
    for (name, p_f), p_r in zip(fast.named_parameters(), ref.parameters()):
        d_f, d_r = p_f.detach() - before[name], p_r.detach() - before[name]
        scale = d_r.abs().max().item()
        assert scale > 0, f"{name} did not move"
        # The updates themselves (not the parameters, which an update hardly changes) agree.
        torch.testing.assert_close(d_f, d_r, rtol=1e-3, atol=1e-3 * scale, msg=lambda m: f"{name}: {m}")
        moved += 1
    assert moved == 16


def test_train_step_matches_hand_written_sgd():
    # The step is plain SGD with momentum and weight decay on the loss: compare with the
    # paper's update rule written out (v <- 0.9 v - 5e-4 lr w - lr g; w <- w + v).
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    w0 = model.weight.detach().clone()
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    g = torch.autograd.grad(F.cross_entropy(model(x), y), model.weight)[0]
    loop.train_step(model, _sgd(model), x, y)
    torch.testing.assert_close(model.weight.detach(), w0 - 0.01 * (g + 5e-4 * w0))


def test_googlenet_loss_weights_aux_by_0_3():
    torch.manual_seed(0)
    logits, a2, a1 = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 3])
    out = models.GoogLeNetOutputs(logits, a2, a1)
    loss, main = loop.loss_fn(out, y, 0.3)
    want = F.cross_entropy(logits, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
    torch.testing.assert_close(loss, want)
    assert main is logits
    # Eval-mode outputs (a tensor) and aux_logits=False outputs (None heads) take the main loss only.
    torch.testing.assert_close(loop.loss_fn(logits, y, 0.3)[0], F.cross_entropy(logits, y))
    torch.testing.assert_close(loop.loss_fn(models.GoogLeNetOutputs(logits, None, None), y, 0.3)[0],
                               F.cross_entropy(logits, y))


def test_ten_crop_evaluation_averages_softmax():
    # evaluate() on (N, 10, 3, H, W) batches averages the crops' softmax (AlexNet paper, 4.1).
    class Net(torch.nn.Module):
        def forward(self, x):
            return x.mean((2, 3))  # 3 "classes": the channel means

    x = torch.randn(2, 10, 3, 4, 4)
    y = torch.tensor([0, 2])
    sums = loop.evaluate(Net(), [(x, y)], "cpu")
    probs = x.mean((3, 4)).softmax(2).mean(1)
    assert sums[3] == 2
    torch.testing.assert_close(sums[0].float(), -probs.log()[torch.arange(2), y].sum(), rtol=1e-5, atol=1e-5)
    assert sums[1] == (probs.argmax(1) == y).sum()
