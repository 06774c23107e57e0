"""Process groups, parallelism, DDP, distributed optimizer, optimizers, LR/WD schedules, loss scaling."""

__version__ = "0.1.0"
