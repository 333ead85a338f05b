"""Input expansion on object storage: folders and globs of s3:// URIs, listed through pyarrow's filesystem."""

import pytest

from valuecsv_ray.audit.paths import expand_inputs
from valuecsv_ray.audit.readers import InputError


def test_s3_folders_and_globs_expand_like_local_ones(s3):
    s3.create_dir("inputs")
    for name in ("dir/a.jsonl", "dir/b.jsonl", "dir/c.csv", "dir/notes.txt", "dir/sub/d.jsonl",
                 "dir/.hidden/e.jsonl", "dir/sub/~$f.xlsx"):
        with s3.open_output_stream(f"inputs/{name}") as f:
            f.write(b"{}\n")
    uri = "s3://inputs/dir"
    assert expand_inputs([f"{uri}/*.jsonl"]) == [f"{uri}/a.jsonl", f"{uri}/b.jsonl"]  # `*`: one folder
    assert expand_inputs([f"{uri}/**/*.jsonl"]) == [f"{uri}/a.jsonl", f"{uri}/b.jsonl", f"{uri}/sub/d.jsonl"]
    assert expand_inputs([f"{uri}/?.csv", f"{uri}/c.csv"]) == [f"{uri}/c.csv"]
    assert expand_inputs([uri]) == [f"{uri}/{n}" for n in ("a.jsonl", "b.jsonl", "c.csv", "sub/d.jsonl")]
    with pytest.raises(InputError, match=r"glob 's3://inputs/dir/\*\.parquet' matches no"):
        expand_inputs([f"{uri}/*.parquet"])
    with pytest.raises(InputError, match="unknown file suffix '.txt'"):
        expand_inputs([f"{uri}/notes.txt"])
