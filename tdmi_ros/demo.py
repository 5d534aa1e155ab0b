"""``tdmi-demo``: the whole pipeline on a real video, over real DDS, with an annotated video out.

Separate processes talk over loopback DDS exactly as on a robot:

    video publisher ──image──► detector ──detections──► pose node ──/poses──► recorder (JSON lines)
                         └────────────image──────────────►   └──/poses/image──► this process (video file)

Outputs (``--out``, default ``outputs/demo``): ``annotated.mp4`` (what the node drew: skeletons, boxes,
track ids), ``poses.jsonl`` (every ``/poses`` message), ``frame.jpg`` (one annotated frame) and
``summary.json``; a one-screen summary is printed at the end.

The demo always keeps DDS on 127.0.0.1 (the Fast DDS profile in ``config/``) and picks its own
ROS_DOMAIN_ID, so it never talks to, or disturbs, other ROS 2 systems on the network.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tdmi_ros.launch_cli import DETECTOR, POSE, VIDEO, NodeCommand, ProcessGroup, load_config, node_commands, node_parameters

_logger = logging.getLogger("tdmi_demo")

REPO_ROOT = Path(__file__).resolve().parents[1]
LOSSLESS_DEPTH = 500  # queues deep enough for a whole demo clip: nothing is dropped for being late
STALL_S = 20.0  # after the video ends, stop once /poses has been silent this long (a frame that never comes)
DEFAULT_VIDEO = REPO_ROOT / "assets" / "videos" / "pose2sim_cam04.mp4"  # held out of the distillation set


def use_loopback_dds() -> None:
    """Keep every DDS socket on 127.0.0.1 and use a private domain (set before any node starts)."""
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO_ROOT / "config" / "fastdds-loopback.xml")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"  # LOCALHOST would replace the profile
    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)


def with_params(cmd: NodeCommand, params: dict[str, Any]) -> NodeCommand:
    """``cmd`` with extra ``-p name:=value`` ROS arguments."""
    return replace(cmd, params={**cmd.params, **{name: str(value) for name, value in params.items()}})


@dataclass
class AnnotatedVideoWriter:
    """Writes every ``/poses/image`` frame to an mp4 and keeps one frame for the docs."""

    path: Path
    fps: float
    frames: int = 0
    _writer: Any = None
    _still: Any = None

    def write(self, msg: Any) -> None:
        import cv2

        from tdmi_ros.conversions import image_to_bgr

        image = image_to_bgr(msg)
        if self._writer is None:
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        self._writer.write(image)
        self.frames += 1
        if self.frames == 30 or self._still is None:  # a frame once the window is warm
            self._still = image

    def close(self, still_path: Path) -> None:
        import cv2

        if self._writer is not None:
            self._writer.release()
        if self._still is not None:
            cv2.imwrite(str(still_path), self._still, [cv2.IMWRITE_JPEG_QUALITY, 85])


def summarize(poses_path: Path, images_published: int, rate_hz: float, wall_s: float,
              boxes_by_stamp: dict[int, int]) -> dict[str, Any]:
    """Numbers for the one-screen summary, from the recorded ``/poses`` messages and the detector's box counts."""
    records = [json.loads(line) for line in poses_path.read_text().splitlines() if line.strip()]
    detected = [r for r in records if r["stamp_ns"] in boxes_by_stamp]
    persons = [len(r["skeletons"]) for r in records]
    tracks = {s["track_id"] for r in records for s in r["skeletons"]}
    latency_ms = np.array([(r["received_ns"] - r["stamp_ns"]) / 1e6 for r in records])
    scores = np.array([s["score"] for r in records for s in r["skeletons"]])
    stamps = sorted(r["stamp_ns"] for r in records)
    return {
        "video_frames_published": images_published,
        "poses_messages": len(records),
        "frames_with_persons": int(sum(1 for p in persons if p)),
        "persons_per_frame_mean": float(np.mean(persons)) if persons else 0.0,
        "distinct_track_ids": len(tracks),
        # the people the detector found vs the skeletons published for them, in the frames /poses covers
        "detector_boxes": sum(boxes_by_stamp[r["stamp_ns"]] for r in detected),
        "skeletons_for_them": sum(len(r["skeletons"]) for r in detected),
        "mean_pose_score": float(scores.mean()) if scores.size else 0.0,
        "input_rate_hz": rate_hz,
        "poses_rate_hz": (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9) if len(stamps) > 1 else 0.0,
        "latency_ms_p50": float(np.percentile(latency_ms, 50)) if latency_ms.size else float("nan"),
        "latency_ms_p90": float(np.percentile(latency_ms, 90)) if latency_ms.size else float("nan"),
        "wall_s": wall_s,
    }


def print_summary(summary: dict[str, Any], out_dir: Path, delta: int) -> None:
    frame_ms = 1000.0 / summary["input_rate_hz"]
    lines = [
        "",
        "TDMI-ROS demo: video publisher -> detector -> pose node -> recorder (separate processes, DDS on 127.0.0.1)",
        f"  frames published        {summary['video_frames_published']}",
        f"  /poses messages         {summary['poses_messages']} ({summary['frames_with_persons']} with persons)",
        f"  persons per frame       {summary['persons_per_frame_mean']:.2f} (distinct track ids: "
        f"{summary['distinct_track_ids']})",
        f"  detector boxes          {summary['detector_boxes']} -> {summary['skeletons_for_them']} skeletons",
        f"  rates                   input {summary['input_rate_hz']:.1f} Hz, /poses {summary['poses_rate_hz']:.1f} Hz",
        f"  latency image->/poses   p50 {summary['latency_ms_p50']:.0f} ms, p90 {summary['latency_ms_p90']:.0f} ms "
        f"(includes the {delta}-frame window wait = {delta * frame_ms:.0f} ms)",
        f"  outputs                 {out_dir}/annotated.mp4, poses.jsonl, frame.jpg, summary.json",
        "",
    ]
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tdmi-demo", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="video file with people")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config" / "pose.yaml", help="node parameters")
    parser.add_argument("--weights", type=Path, default=REPO_ROOT / "weights" / "tdmi_movenet.pt", help="TDMI weights")
    parser.add_argument("--rate-hz", type=float, default=8.0,
                        help="publish rate; the real camera rate of the clip is higher than a 2-core CPU keeps up with")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = whole video)")
    parser.add_argument("--width", type=int, default=540, help="resize frames to this width (0 = keep)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="give up after this long")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [tdmi-demo]: %(message)s")
    if not args.video.is_file():
        _logger.error("video %s not found: run `make setup` (it fetches the demo videos)", args.video)
        return 2
    if not args.weights.is_file():
        _logger.error("weights %s not found", args.weights)
        return 2
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.video, args.config, args.weights = args.video.resolve(), args.config.resolve(), args.weights.resolve()
    os.chdir(REPO_ROOT)  # the YAML's relative paths (detector model, ...) are relative to the checkout
    use_loopback_dds()

    poses_path = args.out / "poses.jsonl"
    delta = int(node_parameters(load_config(args.config), POSE).get("delta", 2))
    commands = {c.name: c for c in node_commands(args.config, str(args.video), detector=True, record=str(poses_path))}
    commands[VIDEO] = with_params(commands[VIDEO], {
        "rate_hz": args.rate_hz, "resize_width": args.width, "max_frames": args.max_frames,
        "wait_for_subscribers": 2,  # detector + pose node: no frame is lost while models load
        "qos_depth": LOSSLESS_DEPTH,
    })
    # a file, not a live camera: every frame is shown, however slow the machine (nothing skipped while busy)
    commands[DETECTOR] = with_params(commands[DETECTOR], {
        "image_qos": "reliable", "max_pending": LOSSLESS_DEPTH,
        "wait_for_subscribers": 2})  # pose node + this viewer
    commands[POSE] = with_params(commands[POSE], {
        "runtime.weights": str(args.weights), "publish_annotated_image": "true",
        "flush_after_idle_s": 1.0,  # publish the last delta frames once the video ends
        "max_frame_age_s": 0.0, "queue_depth": LOSSLESS_DEPTH, "image_qos": "reliable",
        "image_qos_depth": LOSSLESS_DEPTH, "pairing_max_wait_s": 30.0, "pairing_max_pending": LOSSLESS_DEPTH,
    })

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from tdmi_msgs.msg import PersonDetectionArray, Skeleton2DArray

    from tdmi_ros.conversions import stamp_to_ns

    published = _frames_published(args.video, args.max_frames)
    writer = AnnotatedVideoWriter(args.out / "annotated.mp4", fps=args.rate_hz)
    group = ProcessGroup()
    started = time.monotonic()
    code = 0
    with rclpy.init():
        node = rclpy.create_node("tdmi_demo_viewer")
        node.create_subscription(Image, "poses/image", writer.write,
                                 QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
        answered: list[float] = []  # receipt times of /poses messages
        poses_sub = node.create_subscription(Skeleton2DArray, "poses", lambda _msg: answered.append(time.monotonic()),
                                             QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
        boxes_by_stamp: dict[int, int] = {}
        detections_sub = node.create_subscription(
            PersonDetectionArray, "detections",
            lambda msg: boxes_by_stamp.__setitem__(stamp_to_ns(msg.header.stamp), len(msg.detections)),
            QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))

        def ready_for_video() -> bool:
            """The recorder hears /poses (with this viewer: 2 subscribers) and the pose node's and the detector's
            outputs have matched this viewer: nothing published before its readers matched is delivered."""
            return (node.count_subscribers("poses") >= 2 and poses_sub.get_publisher_count() >= 1
                    and detections_sub.get_publisher_count() >= 1)

        group.start([cmd for name, cmd in commands.items() if name != VIDEO])
        video_done_at: float | None = None
        try:
            while time.monotonic() - started < args.timeout_s:
                rclpy.spin_once(node, timeout_sec=0.1)
                failed = {name: rc for name, rc in group.poll().items() if rc != 0}
                if failed:
                    _logger.error("process %s failed with exit code %s", *next(iter(failed.items())))
                    code = 1
                    break
                if VIDEO not in group.procs and ready_for_video():
                    group.start([commands[VIDEO]])
                if VIDEO in group.poll():
                    video_done_at = video_done_at or time.monotonic()
                    if len(answered) >= published and _lines(poses_path) >= published:  # the recorder has them too
                        break
                    if time.monotonic() - max([video_done_at, *answered[-1:]]) > STALL_S:
                        _logger.warning("%d of %d frames answered; /poses silent for %.0f s", len(answered),
                                        published, STALL_S)
                        break
            else:
                _logger.error("demo did not finish within %.0f s", args.timeout_s)
                code = 1
        except KeyboardInterrupt:
            code = 130
        finally:
            group.stop()
            node.destroy_node()
    writer.close(args.out / "frame.jpg")
    if code:
        return code
    summary = summarize(poses_path, published, args.rate_hz, time.monotonic() - started, boxes_by_stamp)
    summary["annotated_frames"] = writer.frames
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary, args.out, delta)
    if summary["poses_messages"] == 0:
        _logger.error("no /poses messages arrived")
        return 1
    return 0


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.is_file() else 0


def _frames_published(video: Path, max_frames: int) -> int:
    import cv2

    count = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    return min(count, max_frames) if max_frames else count


if __name__ == "__main__":
    sys.exit(main())
