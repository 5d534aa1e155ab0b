"""The most memory the pose node's image path can hold at once, derived from its parameters.

Every buffer that holds image data is bounded by a parameter; at their worst all are full at the
same moment. Callbacks keep the image *message* (decoding waits for the worker), so with
P = ``max_image_pixels`` and M = the largest image message accepted
(:func:`tdmi_ros.conversions.max_image_bytes`: P pixels at 8 bytes, rgba16; a bgr8 camera sends 3 P):

====================================  ==============================================================
buffer                                bytes at most
====================================  ==============================================================
image subscription (DDS history)      ``image_qos_depth`` x M, + M being reassembled
message in the callback               3 M (rclpy's C message, the bytes it converts through, the
                                      Python array)
images waiting for detections         M x (``pairing_max_pending`` + 1)
paired frames waiting for inference   M x ``queue_depth``, + M for the frame in the worker
decoding that frame                   9 P: raw 4 P (16-bit high bytes) + 3 P (BGR); JPEG at worst
                                      6 P (a progressive file's coefficients) + 3 P
frames in the temporal window         3 P x (2 ``delta`` + 1) (decoded)
annotated output (if published)       3 P x (``output_qos_depth`` + 3): writer history, the drawing,
                                      its message and serialization
====================================  ==============================================================

With several cameras (``cameras``) every buffer but the callback's is held once per camera.

The node's resident memory stays under ``base + image_path_bound_bytes(cfg)["total"]``, where
``base`` is what it holds when active and idle (measured: model, libraries, DDS). Assumptions:
detection arrays are small (their size is not limited by the node), and messages larger than M,
which the node refuses, still pass through the RMW first (DDS has no per-message size limit here).

Fragmentation: glibc raises its mmap threshold to the size of each large block freed, after which
image-sized buffers come from the heap and freed ones stay resident (measured in the flood test,
before the runtime kept messages undecoded: 90-95 % of the bound instead of 72-78 %).
:func:`return_large_blocks_to_os` fixes the threshold at :data:`MMAP_THRESHOLD_BYTES`, so freed
large images leave RSS; the pose node calls it at start. The threshold sits above the runtime's
per-frame tensors, which on CPU come in pieces of at most
:data:`tdmi_core.runtime.estimator.CPU_BLOCK_BYTES` for any number of persons: blocks served by mmap
are fresh zero pages on every frame, and at 1 MiB those page faults cost the 3-person pipeline
7-14 % of its frame rate (docs/runtime.md).

Run ``python -m tdmi_ros.memory_bound config/pose.yaml`` for a parameter file's figures.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys

from tdmi_ros.params import PoseNodeConfig

MIB = 2**20
MMAP_THRESHOLD_BYTES = 4 * MIB  # images this large go back to the OS when freed; smaller blocks are reused
DECODE_PIXEL_BYTES = 9  # see the table above


def image_path_bound_bytes(cfg: PoseNodeConfig, message_bytes_per_pixel: int = 8) -> dict[str, int]:
    """Bytes each buffer of the table above can hold for ``cfg``, and their ``total``.

    ``message_bytes_per_pixel``: 8 for any accepted image (rgba16); 3 if the camera sends bgr8.
    """
    pixels = cfg.max_image_pixels
    message = pixels * message_bytes_per_pixel  # at 8: tdmi_ros.conversions.max_image_bytes (that module loads OpenCV)
    frame = 3 * pixels
    cameras = len(cfg.cameras)  # each camera has its own buffers; one callback runs at a time
    parts = {
        "dds_history": cameras * (cfg.image_qos_depth + 1) * message,
        "callback_message": 3 * message,
        "pairing": cameras * message * (cfg.pairing_max_pending + 1),
        "inference_queue": cameras * message * (cfg.queue_depth + 1),
        "decoding": cameras * DECODE_PIXEL_BYTES * pixels,  # a step decodes a frame of every camera
        "temporal_window": cameras * frame * (2 * cfg.delta + 1),
        "annotated_output": cameras * frame * (cfg.output_qos_depth + 3) if cfg.publish_annotated_image else 0,
    }
    parts["total"] = sum(parts.values())
    return parts


def return_large_blocks_to_os(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Make glibc serve blocks of ``threshold_bytes`` and more (large images) with mmap, always, so
    that freeing one returns it to the OS. No-op (False) off glibc or when the user set
    ``MALLOC_MMAP_THRESHOLD_`` (theirs wins)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold = -3  # from malloc.h; setting it also turns glibc's dynamic threshold off
    return bool(libc.mallopt(m_mmap_threshold, int(threshold_bytes)))


def main(argv: list[str] | None = None) -> int:
    """Print the bound for the pose node section of a parameter YAML."""
    from tdmi_ros.launch_cli import POSE, load_config, node_parameters

    parser = argparse.ArgumentParser(prog="python -m tdmi_ros.memory_bound", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="parameter YAML with a tdmi_pose section")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="override a pose node parameter (integers and booleans)")
    parser.add_argument("--bytes-per-pixel", type=int, default=8, help="of the image messages (8: any; bgr8: 3)")
    args = parser.parse_args(argv)
    values = node_parameters(load_config(args.config), POSE)
    for item in args.param:
        name, _, value = item.partition(":=")
        values[name] = value.lower() == "true" if value.lower() in ("true", "false") else int(value)
    parts = image_path_bound_bytes(PoseNodeConfig.from_dict(values), args.bytes_per_pixel)
    for name, size in parts.items():
        print(f"{name:>18}: {size / MIB:10.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
