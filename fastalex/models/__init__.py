"""Networks and blocks built from fastalex ops."""
from fastalex.models.alexnet import AlexNet, alexnet, reference_alexnet
from fastalex.models.googlenet import GoogLeNet, GoogLeNetOutputs, TorchvisionGoogLeNet, googlenet, reference_googlenet
from fastalex.models.inception import Inception

__all__ = ["Inception", "AlexNet", "alexnet", "reference_alexnet", "GoogLeNet", "TorchvisionGoogLeNet",
           "GoogLeNetOutputs", "googlenet", "reference_googlenet"]
