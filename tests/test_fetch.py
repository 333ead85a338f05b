"""Getting ValueCSV5000.xlsx, and the `data` commands, without touching the network."""

import urllib.error

import pytest
from click.testing import CliRunner

import valuecsv_ray.fetch
from valuecsv_ray.cli import main
from valuecsv_ray.fetch import FILENAME, VALUECSV5000_SHA256, FetchError, fetch_valuecsv5000, sha256_of

NOTHING_LISTENS = "http://127.0.0.1:9/nothing"  # the discard port: connection refused


def test_unreachable_url_says_where_to_put_the_file(tmp_path):
    dest = tmp_path / "data"
    with pytest.raises(FetchError) as e:
        fetch_valuecsv5000(dest, url=NOTHING_LISTENS, timeout=5)
    message = str(e.value)
    assert str(dest / FILENAME) in message
    assert VALUECSV5000_SHA256 in message
    assert NOTHING_LISTENS in message
    assert not (dest / FILENAME).exists()
    assert list(dest.iterdir()) == []  # no partial download left behind


def test_wrong_checksum_saves_nothing(tmp_path):
    wrong = tmp_path / "wrong.xlsx"
    wrong.write_bytes(b"not the spreadsheet")
    dest = tmp_path / "data"
    with pytest.raises(FetchError) as e:
        fetch_valuecsv5000(dest, url=wrong.as_uri())
    message = str(e.value)
    assert "sha256" in message and VALUECSV5000_SHA256 in message
    assert sha256_of(wrong) in message
    assert list(dest.iterdir()) == []


def test_fetch_from_file_url_verifies_and_keeps_the_file(shared_data, tmp_path):
    source = shared_data / FILENAME
    target = fetch_valuecsv5000(tmp_path, url=source.as_uri())
    assert target == tmp_path / FILENAME
    assert sha256_of(target) == VALUECSV5000_SHA256
    # a second call finds the verified file and does not download again
    assert fetch_valuecsv5000(tmp_path, url=NOTHING_LISTENS) == target


def test_cli_data_check(shared_data):
    result = CliRunner().invoke(main, ["data", "check", str(shared_data / FILENAME)])
    assert result.exit_code == 0, result.output
    assert "4999 samples" in result.output
    assert "excluded:" in result.output and "row 5001" in result.output


def test_cli_data_check_bad_file_exits_1(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,1\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "check", str(bad)])
    assert result.exit_code == 1
    assert "missing column" in result.output


def test_cli_data_fetch_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(valuecsv_ray.fetch.urllib.request, "urlopen", refuse)
    result = CliRunner().invoke(main, ["data", "fetch", "--dest", str(tmp_path)])
    assert result.exit_code == 1
    assert "network is unreachable" in result.output
    assert f"put it at {tmp_path / FILENAME}" in result.output
    assert VALUECSV5000_SHA256 in result.output
