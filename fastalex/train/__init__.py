"""Training AlexNet and GoogLeNet with fastalex: ``python -m fastalex.train --help``.

recipes.py holds each architecture's defaults (from its paper), data.py the ImageFolder checks,
colour statistics and augmentations, loop.py the training step and evaluation, distributed.py
the torchrun / DDP plumbing, checkpoint.py and metrics.py the run's files, make_dataset.py a
small ImageFolder of real images for checking that training learns."""
