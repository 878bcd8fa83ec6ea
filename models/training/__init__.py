"""Training of the cascade (PyTorch; the [train] extra): data, sampling, nets, export."""
