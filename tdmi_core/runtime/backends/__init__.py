"""Inference backends behind one Protocol; optional libraries are imported inside each class."""
from tdmi_core.runtime.backends.base import PRECISIONS, Backend
from tdmi_core.runtime.backends.torch_backend import TorchBackend

__all__ = ["PRECISIONS", "Backend", "TorchBackend", "OnnxRuntimeBackend", "TensorRTBackend"]


def __getattr__(name: str):  # lazy: importing these modules is cheap, their libraries load on construction
    if name == "OnnxRuntimeBackend":
        from tdmi_core.runtime.backends.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    if name == "TensorRTBackend":
        from tdmi_core.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend
    raise AttributeError(name)
