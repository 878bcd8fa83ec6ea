"""The lesion model: network, training (torch, [train] extra) and ONNX export; shipped model folders."""
