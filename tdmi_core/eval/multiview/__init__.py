"""Reference-free multi-view accuracy of 2D pose methods on calibrated, synchronised cameras.

No ground truth is needed: each method's 2D joints in all but one camera are triangulated and
reprojected into the held-out camera, and compared with the method's own joint there
(leave-one-view-out, LOVO). Also jitter (median acceleration ÷ person height), both with bootstrap
intervals over frames, paired comparisons between methods, and a calibration refined by bundle
adjustment on several methods' confident joints. Pure numpy/scipy.

Data interface — a method's predictions (``predictions.Predictions``)::

    {camera name: {frame index: [Detection(track_id, box, keypoints), ...]}}

``track_id`` is that camera's tracker id (ids need not agree across cameras: ``association`` finds
the people), ``box`` is ``[x1, y1, x2, y2]`` and ``keypoints`` is ``[K, 3]`` (x, y, score), all in
the original, distorted image pixels; camera names are the calibration's (``cam01``…). A joint not
reported is NaN or has score 0. Files: ``save_predictions`` / ``load_predictions`` (JSON).

Modules, one job each: ``camera`` (projection, distortion), ``calibration`` (pose2sim's
``Calib.qca.txt`` reader, JSON), ``triangulation`` (weighted DLT, robust step), ``predictions``
(format, files, arrays), ``association`` (people across cameras and methods), ``metrics`` (LOVO,
jitter), ``bootstrap``, ``bundle`` (refinement), ``evaluate`` (the table), ``report`` (markdown,
JSON) and ``__main__`` (the command)::

    python -m tdmi_core.eval.multiview --calib Calib.qca.txt --pred NAME=FILE ... [--pair A,B]
        [--refine-from NAME,NAME,...] [--json out.json] [--markdown out.md]
"""
from tdmi_core.eval.multiview.bootstrap import FrameBootstrap, Interval
from tdmi_core.eval.multiview.bundle import RefinementReport, all_view_residual, refine_calibration
from tdmi_core.eval.multiview.calibration import load_calibration, read_qca, save_calibration
from tdmi_core.eval.multiview.camera import Camera, project, undistort_points
from tdmi_core.eval.multiview.evaluate import Evaluation, evaluate, worst_frames
from tdmi_core.eval.multiview.metrics import MetricConfig, jitter, lovo_errors
from tdmi_core.eval.multiview.predictions import Detection, Predictions, load_predictions, save_predictions
from tdmi_core.eval.multiview.triangulation import robust_triangulate, triangulate

__all__ = [
    "Camera",
    "Detection",
    "Evaluation",
    "FrameBootstrap",
    "Interval",
    "MetricConfig",
    "Predictions",
    "RefinementReport",
    "all_view_residual",
    "evaluate",
    "jitter",
    "load_calibration",
    "load_predictions",
    "lovo_errors",
    "project",
    "read_qca",
    "refine_calibration",
    "robust_triangulate",
    "save_calibration",
    "save_predictions",
    "triangulate",
    "undistort_points",
    "worst_frames",
]
