"""TDMI network (CVPR 2023): HRNet backbone, Temporal Difference Encoder, RDM and heads.

Pure PyTorch; no ROS. Public API: :func:`build_model`, :class:`TDMI`, :class:`ModelConfig`,
:data:`MODEL_CONFIGS`, :func:`load_model_config`, and the weight helpers in
:mod:`tdmi_core.models.weights`.
"""
from tdmi_core.models.configs import MODEL_CONFIGS, ModelConfig, load_model_config, save_model_config
from tdmi_core.models.tdmi import TDMI, TemporalHead, TemporalHeadOutput, build_model, count_parameters

__all__ = [
    "MODEL_CONFIGS",
    "ModelConfig",
    "load_model_config",
    "save_model_config",
    "TDMI",
    "TemporalHead",
    "TemporalHeadOutput",
    "build_model",
    "count_parameters",
]
