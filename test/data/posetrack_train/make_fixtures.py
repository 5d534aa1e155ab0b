"""Regenerate the tiny synthetic PoseTrack fixtures in this directory (deterministic).

    python test/data/posetrack_train/make_fixtures.py

Writes small JPEG frames of moving stick figures and their annotations in the exact PoseTrack2017
(annolist), PoseTrack2018 and PoseTrack21 json layouts, plus a DCPose-format detection file:

    images/train/000001_synth_train/000000.jpg ... 000007.jpg   (PoseTrack18/21 naming, 0-based)
    images/val/000003_synth_val/000000.jpg ... 000005.jpg
    images/pt17/000002_synth/00000001.jpg ... 00000008.jpg       (PoseTrack2017 naming, 1-based)
    posetrack18/{train,val}/*.json   posetrack21/train/*.json   posetrack17/train/*.json
    detections/val_boxes.json
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent
IMAGE_W, IMAGE_H = 160, 120
PT_NAMES = [
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]
PT17_IDS = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "head_bottom", "nose", "head_top",
]
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
            [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
LIMBS = [(1, 2), (1, 5), (1, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12), (11, 13),
         (13, 15), (12, 14), (14, 16), (0, 1)]


def pose(cx: float, cy: float, height: float, phase: float) -> np.ndarray:
    """[17, 3] PoseTrack-slot keypoints (x, y, 1) of a walking stick figure; ears unlabelled (0, 0, 0)."""
    s = height / 100.0
    sw = math.sin(phase)
    rel = {
        "head_top": (0, -50), "nose": (2, -42), "head_bottom": (0, -34),
        "left_shoulder": (10, -30), "right_shoulder": (-10, -30),
        "left_elbow": (14 + 4 * sw, -16), "right_elbow": (-14 - 4 * sw, -16),
        "left_wrist": (16 + 8 * sw, -2), "right_wrist": (-16 - 8 * sw, -2),
        "left_hip": (7, 2), "right_hip": (-7, 2),
        "left_knee": (8 + 6 * sw, 24), "right_knee": (-8 - 6 * sw, 24),
        "left_ankle": (9 + 10 * sw, 48), "right_ankle": (-9 - 10 * sw, 48),
    }
    out = np.zeros((17, 3), np.float64)
    for i, name in enumerate(PT_NAMES):
        if name in rel:
            dx, dy = rel[name]
            out[i] = (round(cx + dx * s, 2), round(cy + dy * s, 2), 1)
    return out


def draw(image: np.ndarray, kps: np.ndarray, colour: tuple[int, int, int]) -> None:
    for a, b in LIMBS:
        if kps[a, 2] > 0 and kps[b, 2] > 0:
            cv2.line(image, (int(kps[a, 0]), int(kps[a, 1])), (int(kps[b, 0]), int(kps[b, 1])), colour, 3, cv2.LINE_AA)
    for k in range(17):
        if kps[k, 2] > 0:
            c = (int(40 + 12 * k), int(255 - 12 * k), int((97 * k) % 255))
            cv2.circle(image, (int(kps[k, 0]), int(kps[k, 1])), 3, c, -1, cv2.LINE_AA)


def background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8)
    base[:] = (70, 90, 60)
    noise = rng.integers(0, 40, size=(IMAGE_H // 8, IMAGE_W // 8, 3)).astype(np.uint8)
    return cv2.add(base, cv2.resize(noise, (IMAGE_W, IMAGE_H), interpolation=cv2.INTER_LINEAR))


def make_video(num_frames: int, num_persons: int, seed: int) -> list[list[np.ndarray]]:
    """Per frame, per person keypoints; people walk across the frame."""
    out = []
    for t in range(num_frames):
        people = []
        for p in range(num_persons):
            cx = 40 + 70 * p + 3.5 * t * (1 if p == 0 else -1)
            people.append(pose(cx, 62 + 2 * p, 90 - 10 * p, 0.7 * t + p))
        out.append(people)
    return out


def write_frames(video: list[list[np.ndarray]], folder: Path, names: list[str], seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, people in enumerate(video):
        image = background(seed)
        for p, kps in enumerate(people):
            draw(image, kps, (220, 200 - 80 * p, 40 + 120 * p))
        cv2.imwrite(str(folder / names[t]), image, [cv2.IMWRITE_JPEG_QUALITY, 80])


def box_xywh(kps: np.ndarray, pad: float = 6.0) -> list[float]:
    pts = kps[kps[:, 2] > 0, :2]
    x1, y1 = pts.min(axis=0) - pad
    x2, y2 = pts.max(axis=0) + pad
    return [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)]


def head_xywh(kps: np.ndarray) -> list[float]:
    top, bottom = kps[2, :2], kps[1, :2]
    h = bottom[1] - top[1]
    return [round(float(top[0] - h / 2), 2), round(float(top[1]), 2), round(float(h), 2), round(float(h), 2)]


def posetrack18_json(video, vid: str, folder: str, labelled: set[int], pt21: bool) -> dict:
    images, anns = [], []
    for t, people in enumerate(video):
        image_id = int(f"1{vid}{t:04d}")
        img = {"has_no_densepose": True, "is_labeled": t in labelled, "file_name": f"{folder}/{t:06d}.jpg",
               "nframes": len(video), "frame_id": image_id, "vid_id": vid, "id": image_id,
               "ignore_regions_x": [], "ignore_regions_y": []}
        if pt21:
            img = {"is_labeled": t in labelled, "nframes": len(video), "image_id": image_id, "id": image_id,
                   "vid_id": vid, "file_name": f"{folder}/{t:06d}.jpg", "has_labeled_person": t in labelled,
                   "ignore_regions_y": [[0, 0, 12, 12]] if t == 2 else [],
                   "ignore_regions_x": [[150, 159, 159, 150]] if t == 2 else [], "frame_id": image_id}
        images.append(img)
        if t not in labelled:
            continue
        for p, kps in enumerate(people):
            k = kps.copy()
            if pt21 and p == 0 and t % 2 == 0:
                k[9, 2] = 0  # PoseTrack21: occluded joint keeps its coordinates with flag 0
            flat = [float(v) if j % 3 != 2 else int(v) for j, v in enumerate(k.reshape(-1))]
            ann = {"bbox_head": head_xywh(kps), "keypoints": flat, "track_id": p, "image_id": image_id,
                   "bbox": box_xywh(kps), "scores": [], "category_id": 1, "id": int(f"{image_id}{p:02d}")}
            if pt21:
                ann = {"bbox": box_xywh(kps), "bbox_head": head_xywh(kps), "category_id": 1,
                       "id": int(f"{image_id}{p:02d}"), "image_id": image_id, "keypoints": flat,
                       "person_id": 1000 + p, "track_id": p}
            anns.append(ann)
        if pt21:  # a box-only person (small, no pose): PoseTrack21 has them
            anns.append({"bbox": [140.0, 5.0, 10.0, 20.0], "bbox_head": [142.0, 5.0, 5.0, 5.0], "category_id": 1,
                         "id": int(f"{image_id}99"), "image_id": image_id, "keypoints": [0.0, 0.0, 0] * 17, "person_id": 1099,
                         "track_id": 9})
    cats = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": PT_NAMES, "skeleton": SKELETON}]
    return {"images": images, "annotations": anns, "categories": cats}


def posetrack17_json(video, folder: str, labelled: set[int]) -> dict:
    annolist = []
    for t, people in enumerate(video):
        if t not in labelled:
            continue
        rects = []
        for p, kps in enumerate(people):
            points = []
            for joint_id, name in enumerate(PT17_IDS):
                slot = PT_NAMES.index(name)
                if p == 1 and name == "left_ankle":
                    continue  # an unannotated joint: 2017 files simply omit it
                points.append({"id": [joint_id], "x": [float(kps[slot, 0])], "y": [float(kps[slot, 1])],
                               "is_visible": [1]})
            hx, hy, hw, hh = head_xywh(kps)
            rects.append({"x1": [hx], "y1": [hy], "x2": [hx + hw], "y2": [hy + hh], "score": [1],
                          "track_id": [p], "annopoints": [{"point": points}]})
        annolist.append({"image": [{"name": f"{folder}/{t + 1:08d}.jpg"}], "imgnum": [t + 1],
                         "is_labeled": [1], "annorect": rects})
    return {"annolist": annolist}


def main() -> None:
    train = make_video(8, 2, seed=1)
    write_frames(train, ROOT / "images/train/000001_synth_train", [f"{t:06d}.jpg" for t in range(8)], seed=1)
    val = make_video(6, 1, seed=3)
    write_frames(val, ROOT / "images/val/000003_synth_val", [f"{t:06d}.jpg" for t in range(6)], seed=3)
    pt17 = make_video(8, 2, seed=2)
    write_frames(pt17, ROOT / "images/pt17/000002_synth", [f"{t + 1:08d}.jpg" for t in range(8)], seed=2)

    outputs = {
        "posetrack18/train/000001_synth_train.json": posetrack18_json(train, "000001", "images/train/000001_synth_train", set(range(1, 7)), False),
        "posetrack18/val/000003_synth_val.json": posetrack18_json(val, "000003", "images/val/000003_synth_val", set(range(6)), False),
        "posetrack21/train/000001_synth_train.json": posetrack18_json(train, "000001", "images/train/000001_synth_train", set(range(1, 7)), True),
        "posetrack17/train/000002_synth.json": posetrack17_json(pt17, "images/pt17/000002_synth", {2, 3, 4, 5}),
    }
    rng = np.random.default_rng(7)
    dets = []
    for t, people in enumerate(val):
        for kps in people:
            x, y, w, h = box_xywh(kps)
            jitter = rng.normal(0, 1.5, 4)
            dets.append({"image_name": f"images/val/000003_synth_val/{t:06d}.jpg", "category_id": 1,
                         "bbox": [round(float(v), 2) for v in (x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3])],
                         "score": round(float(0.9 + 0.01 * t), 3), "nframes": 6, "frame_id": int(f"1000003{t:04d}")})
        dets.append({"image_name": f"images/val/000003_synth_val/{t:06d}.jpg", "category_id": 1,
                     "bbox": [120.0, 10.0, 20.0, 30.0], "score": 0.2, "nframes": 6, "frame_id": int(f"1000003{t:04d}")})
    outputs["detections/val_boxes.json"] = dets
    for rel, data in outputs.items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
