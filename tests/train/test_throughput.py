"""The MFU numerator against a hand count (the trainer computes it only on a GPU)."""

import types

import torch

from astrobio.train.throughput import flops_per_token, parameter_counts, peak_flops


def test_flops_per_token_hand_counted():
    layer = torch.nn.Linear(3, 2)  # 6 weights + 2 biases
    layer.bias.requires_grad_(False)
    assert parameter_counts(layer) == (8, 6)
    lm = types.SimpleNamespace(num_hidden_layers=2, hidden_size=4)
    # 2N forward + 2N input gradients + 2N_trained weight gradients + 12 L h s attention
    assert flops_per_token((8, 6), lm, seq_len=5) == 4 * 8 + 2 * 6 + 12 * 2 * 4 * 5
    assert peak_flops(torch.device("cpu")) is None
