"""The demo command: a thin wrapper over the easy-VQA-CP study."""

from __future__ import annotations

import json
from pathlib import Path

from hint_lightning import caption_demo, decoy_digits, demo
from hint_lightning.study import load_study


def test_the_driver_commands_are_studies() -> None:
    assert (demo.STUDY, caption_demo.STUDY, decoy_digits.STUDY) == (
        "easyvqa_cp",
        "caption_smoke",
        "decoy_digits",
    )
    rows = {row.id: row for row in load_study(demo.STUDY).rows}
    assert set(rows) == {"updn", "lambda0", "hint", "scr", "visfis", "attn_align",
                         "hint_random", "hint_one_minus"}  # fmt: skip
    assert all(row.init_from == "updn" for key, row in rows.items() if key != "updn")


def test_demo_forwards_its_options_to_the_study(tmp_path: Path) -> None:
    run = tmp_path / "updn" / "seed4"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"test/acc": 48.0, "val/acc": 90.0}))
    (run / "study_run.json").write_text(json.dumps({"status": "finished"}))
    table = demo.main(["--seeds", "4", "--output-dir", str(tmp_path), "--table-only"])
    assert table["seeds"] == [4]
    assert [row["id"] for row in table["rows"]] == ["updn"]
    assert "+ HINT" in table["missing"]
    assert (tmp_path / "study_results.md").is_file()
