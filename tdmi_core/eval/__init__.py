"""Evaluation: PoseTrack mAP as the official kits compute it (poseval, PoseTrack21), and multi-view accuracy.

Modules: ``formats`` (json readers as each kit reads them, PoseTrack18 prediction writer),
``regions`` (ignore-region polygons), ``kits`` (which frames and joints each kit evaluates),
``matching`` (per-frame PCKh assignment), ``ap`` (AP and totals), ``posetrack`` (runner and CLI:
``python -m tdmi_core.eval.posetrack``); ``multiview`` (reference-free multi-view accuracy on calibrated
cameras: ``python -m tdmi_core.eval.multiview``). Pure numpy/scipy: nothing here imports torch.
"""
