"""PoseTrack evaluation: a reimplementation of the official kits (poseval, PoseTrack21) and the prediction writer.

Modules: ``formats`` (json readers as each kit reads them, PoseTrack18 prediction writer),
``regions`` (ignore-region polygons), ``kits`` (which frames and joints each kit evaluates),
``matching`` (per-frame PCKh assignment), ``ap`` (AP and totals), ``posetrack`` (runner and CLI:
``python -m tdmi_core.eval.posetrack``). Pure numpy: nothing here imports torch.
"""
