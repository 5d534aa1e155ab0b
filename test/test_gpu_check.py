"""scripts/gpu_check.sh without a GPU: its dry run checks the script, the files and programs it uses."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def test_gpu_check_dry_run_lists_every_step(repo_root: Path, tmp_path: Path) -> None:
    run = subprocess.run(["bash", str(repo_root / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = (tmp_path / "summary.txt").read_text()
    for step in ("install", "pytest-gpu", "engines", "bench-w48", "bench-default", "node-10-persons"):
        assert f"would run ({step}," in summary
    assert "-m gpu" in summary and "--persons 1 5 10" in summary and "runtime.backend:=tensorrt" in summary
    if shutil.which("shellcheck") is None:
        assert "shellcheck not installed" in run.stdout
