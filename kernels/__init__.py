"""Triton kernels, installed as `astrobio.kernels`. Each file: kernels plus their launcher."""
