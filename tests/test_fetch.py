"""Getting the public data files, and the `data` commands, without touching the network:
downloads come from a real HTTP server on 127.0.0.1 serving a tmp folder."""

import functools
import shutil
import threading
import urllib.error
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

import valuecsv_ray.fetch
from valuecsv_ray.cli import data_fetch, main
from valuecsv_ray.fetch import (
    BASE_URL_ENV,
    FILENAME,
    KNOWN_FILES,
    VALUECSV5000_SHA256,
    FetchError,
    fetch,
    fetch_valuecsv5000,
    sha256_of,
)

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


class _Server:
    """A local HTTP server whose /mirror/ is `folder`; `requests` lists the paths asked for."""

    def __init__(self, root):
        self.folder, self.requests = root / "mirror", []
        self.folder.mkdir(parents=True)
        requests = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"


@pytest.fixture
def server(tmp_path):
    srv = _Server(tmp_path / "served")
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _serve_real(server, shared_data, *names):
    for name in names:
        shutil.copy(shared_data / KNOWN_FILES[name].filename, server.folder)


@pytest.mark.parametrize("name", list(KNOWN_FILES))
def test_fetch_each_known_file_from_a_mirror(name, shared_data, server, tmp_path, monkeypatch):
    _serve_real(server, shared_data, name)
    monkeypatch.setenv(BASE_URL_ENV, server.url + "/")
    filename = KNOWN_FILES[name].filename
    target = fetch(name, tmp_path / "data")
    assert target == tmp_path / "data" / filename
    assert target.read_bytes() == (shared_data / filename).read_bytes()
    assert sha256_of(target) == KNOWN_FILES[name].sha256
    assert server.requests == [f"/mirror/{filename}"]
    assert sorted(p.name for p in target.parent.iterdir()) == [filename]  # no .partial left


@pytest.mark.parametrize("name", ["quest100", "cvalues-responsibility"])
def test_mirror_with_wrong_bytes_is_refused_and_the_partial_removed(name, server, tmp_path):
    known = KNOWN_FILES[name]
    (server.folder / known.filename).write_bytes(b"a mirror serving something else")
    dest = tmp_path / "data"
    with pytest.raises(FetchError) as e:
        fetch(name, dest, url=f"{server.url}/{known.filename}")
    message = str(e.value)
    assert known.filename in message and known.sha256 in message
    assert sha256_of(server.folder / known.filename) in message
    assert f"put it at {dest / known.filename}" in message
    assert server.requests == [f"/mirror/{known.filename}"]  # it did download, then refused
    assert list(dest.iterdir()) == []


def test_present_correct_file_is_not_downloaded_again(shared_data, server, tmp_path):
    _serve_real(server, shared_data, "quest100")
    dest = tmp_path / "data"
    dest.mkdir()
    shutil.copy(shared_data / "quest100.xlsx", dest)
    assert fetch("quest100", dest, url=f"{server.url}/quest100.xlsx") == dest / "quest100.xlsx"
    assert server.requests == []


def test_present_corrupted_file_is_downloaded_again(shared_data, server, tmp_path):
    _serve_real(server, shared_data, "cvalues-responsibility")
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "cvalues_responsibility_prompts.jsonl").write_text('{"truncated":', encoding="utf-8")
    target = fetch("cvalues-responsibility", dest, url=f"{server.url}/cvalues_responsibility_prompts.jsonl")
    assert sha256_of(target) == KNOWN_FILES["cvalues-responsibility"].sha256
    assert len(server.requests) == 1


def test_missing_on_the_server_says_where_to_get_it(server, tmp_path):
    dest = tmp_path / "data"
    with pytest.raises(FetchError) as e:
        fetch("quest100", dest, url=f"{server.url}/quest100.xlsx")
    message = str(e.value)
    assert "404" in message and "github.com/ValueCSV/ValueCSV" in message
    assert f"put it at {dest / 'quest100.xlsx'}" in message
    assert list(dest.iterdir()) == []


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(FetchError, match="quest100"):
        fetch("quest1000", tmp_path)


def test_cli_fetch_prompt_suites_from_a_mirror(shared_data, server, tmp_path):
    _serve_real(server, shared_data, *KNOWN_FILES)
    dest = tmp_path / "data"
    args = ["data", "fetch", "--dest", str(dest), "--dataset", "quest100"]
    args += ["--dataset", "cvalues-responsibility"]
    result = CliRunner().invoke(main, args, env={BASE_URL_ENV: server.url})
    assert result.exit_code == 0, result.output
    wanted = ["quest100.xlsx", "cvalues_responsibility_prompts.jsonl"]
    assert sorted(p.name for p in dest.iterdir()) == sorted(wanted)  # not ValueCSV5000.xlsx
    for filename in wanted:
        assert (dest / filename).read_bytes() == (shared_data / filename).read_bytes()
        assert f"ok: {dest / filename} (sha256 verified)" in result.output
    assert server.requests == [f"/mirror/{f}" for f in wanted]
    # the suites read the fetched folder
    from valuecsv_ray.collect.suites import load_suite

    assert len(load_suite("quest100", data_dir=dest)[0]) == 100


def test_cli_fetch_all_and_its_choices_match_the_known_files(shared_data, server, tmp_path):
    choices = next(p for p in data_fetch.params if p.name == "datasets").type.choices
    assert list(choices) == [*KNOWN_FILES, "all"]
    _serve_real(server, shared_data, *KNOWN_FILES)
    dest = tmp_path / "data"
    args = ["data", "fetch", "--dest", str(dest), "--dataset", "all", "--dataset", "quest100"]
    result = CliRunner().invoke(main, args, env={BASE_URL_ENV: server.url})
    assert result.exit_code == 0, result.output
    assert sorted(server.requests) == sorted(f"/mirror/{k.filename}" for k in KNOWN_FILES.values())
