"""Cost of a model: parameters and FLOPs per face, counted with PyTorch's own FLOP counter."""

from __future__ import annotations

import torch


def count_parameters(model) -> int:
    """Number of parameters (trainable or not) of a ``torch.nn.Module``."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def gflops_per_face(model, num_channels: int = None, image_size: int = None) -> float:
    """GFLOPs of one forward pass on one face, counted by ``torch.utils.flop_counter.FlopCounterMode``
    (a multiply-add counts as 2 FLOPs; convolutions, matmuls and LSTMs are counted, element-wise ops are
    not). The input size defaults to the model config's ``num_channels`` and ``image_size``."""
    from torch.utils.flop_counter import FlopCounterMode

    config = model.config
    channels = num_channels or getattr(config, "num_channels", 1)
    size = image_size or getattr(config, "image_size", 48)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(pixel_values=torch.zeros(1, channels, size, size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9


def run_times(function, repeats: int, warmup: int = 1) -> list:
    """Wall-clock seconds of ``repeats`` calls of ``function()`` (after ``warmup`` untimed calls)."""
    import time

    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of one call of ``function()`` over ``repeats`` timed calls (`run_times`)."""
    import statistics

    return statistics.median(run_times(function, repeats, warmup))
