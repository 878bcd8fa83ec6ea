"""The lesion model: network, training and ONNX export (torch, [train] extra); shipped models."""
