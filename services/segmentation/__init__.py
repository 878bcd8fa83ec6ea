"""Lesion segmentation: model choice and manifests, ONNX cascade inference, lesion extraction."""
