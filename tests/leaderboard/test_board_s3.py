"""The leaderboard on object storage: an audit on s3:// is read, ranked and written back whole."""

import io

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from valuecsv_ray.audit.stats import compute_stats, write_stats
from valuecsv_ray.leaderboard.board import (
    LEADERBOARD_SCHEMA,
    leaderboard,
    load_leaderboard,
    read_audit_scores,
    write_leaderboard,
)
from valuecsv_ray.leaderboard.profiles import presets

MODELS = {"m-high": 0.1, "m-low": -0.1}


def test_leaderboard_of_an_audit_on_s3_round_trips(s3, toy, make_scores, tmp_path):
    scores = make_scores(toy, MODELS, n_prompts=12)
    s3.create_dir("board")
    with s3.open_output_stream("board/audit/scores/part-0.parquet") as f:
        buffer = io.BytesIO()
        scores.to_parquet(buffer, index=False)
        f.write(buffer.getvalue())
    write_stats(*compute_stats(scores, toy), toy, "s3://board/audit/stats")

    for given in ("s3://board/audit", "s3://board/audit/stats"):  # the audit folder or its stats folder
        read, taxonomy, where = read_audit_scores(given)
        assert taxonomy == toy and len(read) == len(scores)
        assert where.scores_dir == "s3://board/audit/scores" and where.leaderboard_dir == "s3://board/audit/leaderboard"
    board = leaderboard(read, taxonomy, list(presets(toy).values()), n_boot=50)
    paths = write_leaderboard(board, where.leaderboard_dir)
    assert paths["parquet"] == "s3://board/audit/leaderboard/leaderboard.parquet"

    infos = s3.get_file_info(pafs.FileSelector("board/audit/leaderboard", recursive=True))
    assert sorted(i.base_name for i in infos) == ["leaderboard.csv", "leaderboard.parquet", "profiles.json"]
    schema = pq.read_schema("board/audit/leaderboard/leaderboard.parquet", filesystem=s3)
    assert schema.equals(LEADERBOARD_SCHEMA)
    loaded, meta = load_leaderboard("s3://board/audit/leaderboard")
    pd.testing.assert_frame_equal(loaded, board)
    assert meta["n_boot"] == 50 and meta["models"] == sorted(MODELS) and meta["taxonomy"] == toy.name

    local = write_leaderboard(board, tmp_path / "lb")  # the same board on a local disk: same files
    assert pq.read_table(local["parquet"]).equals(pq.read_table(paths["parquet"].removeprefix("s3://"),
                                                                filesystem=s3))
