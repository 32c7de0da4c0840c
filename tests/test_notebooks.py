"""The notebooks run top to bottom on their small defaults (through nbmake, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_stored_without_outputs() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_hint_on_your_own_model.ipynb",
    ]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = [cell for cell in cells if cell["cell_type"] == "code"]
        assert code and all(not cell["outputs"] for cell in code), path.name
        assert all(cell["execution_count"] is None for cell in code), path.name
        assert "parameters" in code[0]["metadata"].get("tags", []), path.name


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(
    notebook: Path, easyvqa_data_dir: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "HINT_NOTEBOOK_DATA": str(easyvqa_data_dir),  # never the repository's data/
        "HINT_NOTEBOOK_RUNS": str(tmp_path / "runs"),
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "--nbmake-timeout=300",
            "-p",
            "no:cacheprovider",
            "-q",
            str(notebook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert list((tmp_path / "runs").rglob("*.png")), "the notebook drew no picture"
