"""Export a trained :class:`CascadeNet` to ONNX, and read its weights back for fine-tuning.

The graphs are written with ``onnx.helper`` from the trained tensors rather than traced: the
network is nine operators long, and building it by hand keeps the dense (dilated) form and the
patch form provably the same computation, independent of the torch exporter's version.

Both graphs output ``prob``: the softmax probability of the lesion class, shape (N, 1, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from mslesion.models.network import CascadeNet

OPSET = 17
INPUT_NAME = "x"
OUTPUT_NAME = "prob"
_BN_EPS_KEY = "bn_eps"


def _tensor(name: str, value: torch.Tensor) -> onnx.TensorProto:
    return numpy_helper.from_array(value.detach().cpu().numpy().astype(np.float32), name)


def _initializers(net: CascadeNet) -> list[onnx.TensorProto]:
    """Every weight, named after the torch state_dict key (so it can be read back)."""
    state = net.state_dict()
    return [_tensor(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def _conv_block_nodes(net: CascadeNet, dense: bool) -> list[onnx.NodeProto]:
    """Conv → BN → ReLU → pool, twice; pooling strides turn into dilations in the dense form."""
    pool1: dict[str, Any] = {
        "kernel_shape": [2, 2, 2],
        "strides": [1, 1, 1] if dense else [2, 2, 2],
    }
    conv2: dict[str, Any] = {
        "kernel_shape": [3, 3, 3],
        "dilations": [2, 2, 2] if dense else [1, 1, 1],
    }
    pool2: dict[str, Any] = {"kernel_shape": [2, 2, 2]}
    pool2 |= {"strides": [1, 1, 1], "dilations": [2, 2, 2]} if dense else {"strides": [2, 2, 2]}
    nodes = []
    conv1: dict[str, Any] = {"kernel_shape": [3, 3, 3]}
    for i, (src, conv_attrs, pool_attrs) in enumerate(
        [(INPUT_NAME, conv1, pool1), ("p1", conv2, pool2)], start=1
    ):
        bn = getattr(net, f"bn{i}")
        nodes += [
            helper.make_node(
                "Conv", [src, f"conv{i}.weight", f"conv{i}.bias"], [f"c{i}"], **conv_attrs
            ),
            helper.make_node(
                "BatchNormalization",
                [
                    f"c{i}",
                    f"bn{i}.weight",
                    f"bn{i}.bias",
                    f"bn{i}.running_mean",
                    f"bn{i}.running_var",
                ],
                [f"b{i}"],
                epsilon=float(bn.eps),
            ),
            helper.make_node("Relu", [f"b{i}"], [f"r{i}"]),
            helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], **pool_attrs),
        ]
    return nodes


def _head_nodes() -> list[onnx.NodeProto]:
    """Dense layers as 1×1×1 convolutions, softmax over classes, lesion channel kept."""
    return [
        helper.make_node("Conv", ["p2", "fc1.weight", "fc1.bias"], ["f1"], kernel_shape=[1, 1, 1]),
        helper.make_node("Relu", ["f1"], ["h1"]),
        helper.make_node(
            "Conv", ["h1", "fc2.weight", "fc2.bias"], ["logits"], kernel_shape=[1, 1, 1]
        ),
        helper.make_node("Softmax", ["logits"], ["softmax"], axis=1),
        helper.make_node("Slice", ["softmax", "one", "two", "one"], [OUTPUT_NAME]),
    ]


def build_onnx(net: CascadeNet, dense: bool, doc: str = "") -> onnx.ModelProto:
    """Build the ONNX model of ``net``: dense (dynamic tile) or patch-wise (N, C, 11, 11, 11)."""
    spatial: list[str | int] = ["D", "H", "W"] if dense else [11, 11, 11]
    out_spatial: list[str | int] = ["D_out", "H_out", "W_out"] if dense else [1, 1, 1]
    channels = net.in_channels
    graph = helper.make_graph(
        _conv_block_nodes(net, dense) + _head_nodes(),
        "cascade_net_dense" if dense else "cascade_net_patch",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", channels, *spatial])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1, *out_spatial])],
        initializer=[
            *_initializers(net),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "two"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mslesion"
    )
    model.ir_version = 8  # readable by every ONNX Runtime >= 1.10
    model.doc_string = doc
    onnx.checker.check_model(model)
    return model


def save_onnx(net: CascadeNet, path: Path, dense: bool, doc: str = "") -> Path:
    """Write ``net`` (in eval mode) as an ONNX file and return its path."""
    net = net.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_onnx(net, dense, doc), str(path))
    return path


def load_net_from_onnx(path: Path) -> CascadeNet:
    """Rebuild a :class:`CascadeNet` from an ONNX file written by :func:`save_onnx`.

    Used by ``mslesion train --init`` so a shipped model (ONNX only) can be fine-tuned.
    """
    model = onnx.load(str(path))
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w1, w2, f1 = arrays["conv1.weight"], arrays["conv2.weight"], arrays["fc1.weight"]
    net = CascadeNet(
        in_channels=int(w1.shape[1]),
        conv1=int(w1.shape[0]),
        conv2=int(w2.shape[0]),
        dense=int(f1.shape[0]),
    )
    # ONNX stores epsilon as float32: round back to the float64 value torch was given.
    eps = {
        n.input[1].split(".")[0]: float(f"{a.f:.7g}")
        for n in model.graph.node
        if n.op_type == "BatchNormalization"
        for a in n.attribute
        if a.name == "epsilon"
    }
    for name, bn in (("bn1", net.bn1), ("bn2", net.bn2)):
        bn.eps = eps.get(name, bn.eps)
    state = net.state_dict()
    missing = [k for k in state if k not in arrays and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path}: not an mslesion cascade network (missing {', '.join(missing)})")
    net.load_state_dict(
        {k: torch.from_numpy(arrays[k].copy()) if k in arrays else v for k, v in state.items()}
    )
    return net.eval()
