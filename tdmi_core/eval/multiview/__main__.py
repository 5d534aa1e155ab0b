"""``python -m tdmi_core.eval.multiview``: print the multi-view comparison table (markdown).

Example::

    python -m tdmi_core.eval.multiview --calib Calib.qca.txt \\
        --pred movenet256=movenet256.json --pred tdmi=tdmi.json --pred tdmi_single=tdmi_single.json \\
        --pair tdmi,tdmi_single --pair tdmi,movenet256 --refine-from movenet256,tdmi,tdmi_single \\
        --json table.json --markdown table.md
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tdmi_core.eval.multiview.calibration import load_calibration, save_calibration
from tdmi_core.eval.multiview.evaluate import evaluate, worst_frames
from tdmi_core.eval.multiview.metrics import MetricConfig
from tdmi_core.eval.multiview.predictions import load_predictions
from tdmi_core.eval.multiview.report import to_json, to_markdown
from tdmi_core.eval.multiview.triangulation import DEFAULT_MAX_ERROR_PX


def _named_file(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(path)


def _names(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    if not names:
        raise argparse.ArgumentTypeError(f"expected NAME,NAME,..., got {text!r}")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tdmi_core.eval.multiview", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calib", type=Path, required=True, help="Calib.qca.txt (Qualisys) or a calibration .json")
    parser.add_argument("--pred", type=_named_file, action="append", required=True, metavar="NAME=FILE",
                        help="a method's predictions (tdmi-multiview-predictions JSON); the first method's people "
                        "are the reference")
    parser.add_argument("--pair", type=_names, action="append", default=[], metavar="A,B",
                        help="also report A − B and A ÷ B on the same samples")
    parser.add_argument("--refine-from", type=_names, default=[], metavar="NAME,NAME,...",
                        help="refine the calibration on confident joints of these (at least two) methods")
    parser.add_argument("--save-refined", type=Path, help="write the refined calibration (JSON)")
    parser.add_argument("--json", type=Path, help="write the full result as JSON")
    parser.add_argument("--markdown", type=Path, help="write the tables as markdown")
    parser.add_argument("--worst", type=int, default=3, help="worst frames listed per method")
    parser.add_argument("--min-score", type=float, default=MetricConfig.min_score,
                        help="score a view needs to be triangulated")
    parser.add_argument("--max-error-px", type=float, default=DEFAULT_MAX_ERROR_PX,
                        help="robust step: drop a view whose reprojection error exceeds this")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    if any(len(pair) != 2 for pair in args.pair):
        _parser().error("--pair takes exactly two names: A,B")
    if args.refine_from and len(set(args.refine_from)) < 2:
        _parser().error("--refine-from needs at least two different methods, never the method under test alone")
    if args.save_refined and not args.refine_from:
        _parser().error("--save-refined needs --refine-from")
    names = [name for name, _ in args.pred]
    if len(set(names)) != len(names):
        _parser().error(f"method names repeat: {names}")

    cameras = load_calibration(args.calib)
    methods = {name: load_predictions(path) for name, path in args.pred}
    evaluation = evaluate(
        methods,
        cameras,
        pairs=[tuple(pair) for pair in args.pair],
        refine_from=args.refine_from,
        config=MetricConfig(min_score=args.min_score, max_error_px=args.max_error_px),
        n_boot=args.bootstrap,
        seed=args.seed,
    )
    calibration = evaluation.tables[-1].calibration
    worst = {name: worst_frames(evaluation, name, calibration, args.worst) for name in names}
    markdown = to_markdown(evaluation, worst)
    print(markdown)
    if args.markdown:
        args.markdown.write_text(markdown)
    if args.json:
        args.json.write_text(json.dumps(to_json(evaluation, worst), indent=1))
    if args.save_refined:
        save_calibration(evaluation.calibrations["refined"], args.save_refined)
    return 0


if __name__ == "__main__":
    sys.exit(main())
