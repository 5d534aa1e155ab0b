#!/usr/bin/env python3
"""Write a clip with exactly three people for the pipeline-speed check: musicalgestures' dancer, three times side by side.

    python scripts/make_three_person_clip.py [--frames 300] [--out outputs/bench/three_dancers.mp4]

The dancer is training footage, so this clip measures speed only, never accuracy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO / "assets" / "videos" / "mg_dancer.avi")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench" / "three_dancers.mp4")
    args = parser.parse_args()
    cap = cv2.VideoCapture(str(args.source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while len(frames) < args.frames + 200:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if len(frames) < args.frames + 200:
        raise SystemExit(f"{args.source}: too short or missing (run scripts/fetch_assets.py)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (3 * w, h))
    for i in range(args.frames):  # three different moments of the dance, so the poses differ
        writer.write(np.hstack([frames[i], frames[i + 100], frames[i + 200]]))
    writer.release()
    print(f"wrote {args.out} ({args.frames} frames, {3 * w}x{h}, {fps:.0f} fps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
