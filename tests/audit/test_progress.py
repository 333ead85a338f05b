"""The audit's progress in summary.json (no Ray): written at each phase change and at most every
`every_s` seconds between, whole."""

import json

from valuecsv_ray.audit.outputs import Progress


def _read(out):
    return json.loads((out / "summary.json").read_text())


def test_progress_is_written_at_phase_changes_and_at_most_every_interval(tmp_path):
    progress = Progress(str(tmp_path), every_s=3600, record={"registry_id": "r1"}, rows_done_before=5)
    progress.checked(100)
    assert not (tmp_path / "summary.json").exists()  # within the interval
    progress.start_scoring(rows_in=100)
    written = _read(tmp_path)
    assert written["status"] == "running" and written["registry_id"] == "r1"
    assert {k: written["progress"][k] for k in ("phase", "rows_in", "rows_checked", "rows_scored",
                                                "rows_done_before")} == {
        "phase": "score", "rows_in": 100, "rows_checked": 100, "rows_scored": 0, "rows_done_before": 5}
    progress.scored(40)
    assert _read(tmp_path)["progress"]["rows_scored"] == 0  # within the interval
    progress.every_s = 0
    progress.scored(20)
    now = _read(tmp_path)["progress"]
    assert now["rows_scored"] == 60 and now["rows_per_s"] > 0 and now["first_scores_s"] is not None
    final = progress.write("done", rows_scored=95)
    assert _read(tmp_path) == final and final["status"] == "done" and final["rows_scored"] == 95
    assert not list(tmp_path.glob("*.tmp"))  # written under a temporary name, then renamed
