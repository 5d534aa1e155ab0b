"""Streaming multi-person TDMI inference (no ROS): the stream, its worker, model loading and backends.

Modules (import them directly; this package imports nothing, so light users such as the detector
node's worker do not load torch):

- ``config``: :class:`RuntimeConfig` (the ``runtime`` section of the node's parameters), ``load_runtime_config``.
- ``loading``: ``build_estimator`` / ``load_model`` (weights or an untrained model) and ``ModelLoadError``.
- ``backends``: the ``Backend`` protocol and the one table of backends (torch, onnxruntime, tensorrt).
- ``estimator``: :class:`StreamingPoseEstimator` (per-track feature reuse); ``types``: its inputs and outputs.
- ``pipeline``: :class:`PosePipeline`, tracker + estimator on a worker thread (the head on a second); ``worker``: the bounded
  queue and thread it runs on; ``stats``: the counters behind ``/diagnostics``.
- ``crops``, ``buffers``, ``engine_cache``: the estimator's and the compiled backends' parts.
"""
