"""``python -m tdmi_core.train``: train TDMI (a YAML file sets the defaults, flags override them).

Examples::

    python -m tdmi_core.train --config config/train/posetrack17_tdmi_w48.yaml
    python -m tdmi_core.train --config config/train/lite_end_to_end.yaml \\
        --train-annotations data/distill/annotations/train --train-image-root data/distill
    torchrun --nproc_per_node=2 -m tdmi_core.train --config config/train/lite_end_to_end.yaml ...

Every :class:`tdmi_core.train.config.TrainConfig` field is a flag (``lr_milestones`` -> ``--lr-milestones 6 12 18``;
booleans take ``--flag`` / ``--no-flag``; ``none`` clears an optional value). The resolved config is written to
``<output_dir>/args.yaml``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, Sequence

from tdmi_core.train.config import TrainConfig, load_yaml_mapping, train_config_fields

logger = logging.getLogger("tdmi_core.train")


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with one flag per TrainConfig field (defaults filled from the YAML later)."""
    parser = argparse.ArgumentParser(
        prog="python -m tdmi_core.train", description="Train TDMI on PoseTrack-format video annotations.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", "-c", default=None, help="training YAML (config/train/*.yaml) providing the defaults")
    defaults = TrainConfig()
    for name, field in train_config_fields().items():
        flag = "--" + name.replace("_", "-")
        kind = str(field.type).replace(" ", "")
        default = getattr(defaults, name)
        if kind.startswith("bool"):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default)
        elif kind.startswith("tuple[int"):
            parser.add_argument(flag, dest=name, type=int, nargs="+", default=list(default))
        else:
            base = {"int": int, "float": float, "str": str}[kind.split("|")[0]]
            parser.add_argument(flag, dest=name, type=_optional(base) if "None" in kind else base, default=default)
    return parser


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """argv -> validated TrainConfig: YAML (``--config``) sets defaults, flags override."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        parser.set_defaults(**load_yaml_mapping(pre.config))
    args = vars(parser.parse_args(argv))
    args.pop("config")
    return TrainConfig(**args)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    from tdmi_core.train.ddp import cleanup_distributed, init_distributed
    from tdmi_core.train.trainer import Trainer

    cfg = parse_config(argv)
    rank = int(os.environ.get("RANK", "0"))  # torchrun's; the process group is joined below
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(name)s %(levelname)s: %(message)s")
    logging.getLogger("tdmi_core.train.ddp").setLevel(logging.INFO)  # every rank reports joining
    info = init_distributed(cfg.device, cfg.dist_backend)
    try:
        Trainer(cfg, info).fit()
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
