"""Getting the data: cache, mirrors, public address, checks, and the synthetic sample.

Downloads are tested against a real HTTP server on 127.0.0.1 serving a temporary folder; the
public address is pointed at a closed local port, so no test reaches the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import real_month
from sklearn.linear_model import LinearRegression

from week2 import config, data, files, utils
from week2.machinery import servers

MONTH = "2021-01"
FILENAME = "green_tripdata_2021-01.parquet"
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)


@dataclass
class Served:
    folder: Path
    url: str
    failures: dict[str, list[int]] = field(default_factory=dict)
    """Statuses to answer for a file name before serving it, e.g. {FILENAME: [503]}."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        failures = self.server.served.failures.get(self.path.lstrip("/"))
        if failures:
            self.send_error(failures.pop(0))
        else:
            super().do_GET()

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder))
    )
    server.served = Served(folder, f"http://127.0.0.1:{server.server_address[1]}/")
    # A short poll interval lets shutdown() return at once instead of after the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.served
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_url():
    """An address where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{servers.free_ports(1)[0]}/"


@pytest.fixture
def cache(tmp_path, monkeypatch, dead_url):
    """An empty data folder of the test's own, no mirror, and a public address that is down."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("WEEK2_DATA_DIR", str(folder))
    monkeypatch.setenv("WEEK2_SAMPLE_ROWS", "2000")
    monkeypatch.delenv("WEEK2_TLC_MIRROR", raising=False)
    monkeypatch.setattr(data, "TLC_BASE_URL", dead_url)
    monkeypatch.setattr(data, "RETRY_DELAY_SECONDS", 0)
    return folder


@pytest.fixture(scope="module")
def parquet_bytes(tmp_path_factory):
    """A small but genuine green-month parquet file, as bytes."""
    path = tmp_path_factory.mktemp("parquet") / FILENAME
    data.synthetic_month(MONTH, rows=200, seed=1).to_parquet(path)
    return path.read_bytes()


def _checksums(content: bytes) -> dict[str, str]:
    return {FILENAME: hashlib.sha256(content).hexdigest()}


def _leftovers(folder: Path) -> list[str]:
    """Every name in `folder`, temporary files included (they start with a dot)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- real months: where they come from --------------------------------------------------------------


def test_download_from_a_base_url_mirror_lands_verified_in_the_cache(served, cache, parquet_bytes, capsys):
    (served.folder / FILENAME).write_bytes(parquet_bytes)

    path = data.fetch_month(MONTH, mirror=served.url, checksums=_checksums(parquet_bytes))

    assert path == cache / FILENAME
    assert path.read_bytes() == parquet_bytes
    assert _leftovers(cache) == [FILENAME]  # no temporary file left
    assert f"downloading {served.url}{FILENAME}" in capsys.readouterr().err


def test_without_a_mirror_the_public_address_is_used(served, cache, parquet_bytes, monkeypatch):
    (served.folder / FILENAME).write_bytes(parquet_bytes)
    monkeypatch.setattr(data, "TLC_BASE_URL", served.url)

    path = data.fetch_month(MONTH, mirror="", progress=False, checksums=_checksums(parquet_bytes))

    assert path.read_bytes() == parquet_bytes


def test_the_mirror_comes_from_the_environment(served, cache, parquet_bytes, monkeypatch):
    (served.folder / FILENAME).write_bytes(parquet_bytes)
    monkeypatch.setenv("WEEK2_TLC_MIRROR", served.url)

    assert data.fetch_month(MONTH, progress=False, checksums={}).read_bytes() == parquet_bytes


def test_cache_hit_needs_no_network(served, cache, parquet_bytes, dead_url):
    (served.folder / FILENAME).write_bytes(parquet_bytes)
    data.fetch_month(MONTH, mirror=served.url, progress=False, checksums=_checksums(parquet_bytes))

    path = data.fetch_month(MONTH, mirror=dead_url, progress=False, checksums=_checksums(parquet_bytes))

    assert path.read_bytes() == parquet_bytes


def test_a_corrupt_cached_file_is_fetched_again_and_replaced(served, cache, parquet_bytes, capsys):
    cache.mkdir()
    (cache / FILENAME).write_bytes(parquet_bytes[: len(parquet_bytes) // 2])  # an interrupted copy
    (served.folder / FILENAME).write_bytes(parquet_bytes)

    path = data.fetch_month(MONTH, mirror=served.url, progress=False, checksums=_checksums(parquet_bytes))

    assert path == cache / FILENAME and path.read_bytes() == parquet_bytes
    assert (
        f"replaced the damaged {cache / FILENAME} with a verified copy from {served.url}"
        in capsys.readouterr().err
    )
    assert _leftovers(cache) == [FILENAME]


def test_a_corrupt_cached_file_that_cannot_be_fetched_again_stops_real_mode(
    cache, parquet_bytes, monkeypatch
):
    cache.mkdir()
    damaged = parquet_bytes[: len(parquet_bytes) // 2]
    (cache / FILENAME).write_bytes(damaged)
    monkeypatch.setattr(data, "known_sha256", lambda: {})

    with pytest.raises(data.DataError) as error:
        data.resolve_months([MONTH], mode="real")

    message = str(error.value)
    assert f"{cache / FILENAME} is not a whole parquet file" in message and "\n" not in message
    assert (cache / FILENAME).read_bytes() == damaged  # kept until a good copy replaces it
    assert _leftovers(cache) == [FILENAME]


def _partial(folder: Path, age_seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{FILENAME}.{age_seconds:.0f}{files.PARTIAL_SUFFIX}"
    partial.write_bytes(b"PAR1 half of a month")
    then = time.time() - age_seconds
    os.utime(partial, (then, then))
    return partial


def test_partial_downloads_of_dead_processes_are_removed_by_the_next_run(cache, parquet_bytes):
    cache.mkdir()
    (cache / FILENAME).write_bytes(parquet_bytes)
    left_by_a_killed_run = _partial(cache, age_seconds=3600)
    killed_a_moment_ago = _partial(cache, age_seconds=0)  # nobody holds it locked: its writer is dead
    sample_leftover = _partial(cache / "sample", age_seconds=3600)

    data.fetch_month(MONTH, progress=False, checksums=_checksums(parquet_bytes))
    data.sample_month_path(MONTH)

    assert not left_by_a_killed_run.exists() and not sample_leftover.exists()
    assert not killed_a_moment_ago.exists()


def test_a_partial_file_another_process_is_writing_is_kept(tmp_path):
    """`kill -9` of a writer: its `.part` stays while it lives, and goes at once when it is dead."""
    writer = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time; from week2.files import atomic_path\n"
            "with atomic_path(sys.argv[1]) as part:\n"
            "    part.write_bytes(b'PAR1 half'); print(part, flush=True); time.sleep(60)",
            str(tmp_path / FILENAME),
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        partial = Path(writer.stdout.readline().strip())
        assert files.remove_partials(tmp_path) == [] and partial.exists()
    finally:
        writer.kill()  # SIGKILL: no clean-up runs in the writer
        writer.wait()
    assert partial.exists()
    assert files.remove_partials(tmp_path) == [partial]  # seconds old: no waiting for it to age
    assert _leftovers(tmp_path) == []


def test_a_writer_whose_new_file_is_removed_before_it_locks_it_makes_another(tmp_path, monkeypatch):
    """The moment between creating a `.part` file and locking it: another process's clean-up wins it."""
    created = []
    mkstemp = files.tempfile.mkstemp

    def mkstemp_then_another_process_cleans_up(*args, **kwargs):
        handle, name = mkstemp(*args, **kwargs)
        created.append(Path(name))
        if len(created) == 1:
            assert files.remove_partials(tmp_path) == [Path(name)]
        return handle, name

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp_then_another_process_cleans_up)
    with files.atomic_path(tmp_path / FILENAME) as part:
        assert part == created[-1] and len(created) == 2  # the writer saw its first file go
        part.write_bytes(b"PAR1 whole")
        assert files.remove_partials(tmp_path) == []  # the second is locked before anyone sees it
    assert (tmp_path / FILENAME).read_bytes() == b"PAR1 whole"
    assert _leftovers(tmp_path) == [FILENAME]


def test_directory_mirror_is_copied_into_the_cache(tmp_path, cache, parquet_bytes):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / FILENAME).write_bytes(parquet_bytes)

    path = data.fetch_month(MONTH, mirror=str(mirror), progress=False, checksums=_checksums(parquet_bytes))

    assert path == cache / FILENAME and path.read_bytes() == parquet_bytes
    assert (mirror / FILENAME).exists()  # copied, not moved


def test_a_directory_mirror_without_the_month_falls_through_to_the_public_address(
    tmp_path, served, cache, parquet_bytes, monkeypatch
):
    (served.folder / FILENAME).write_bytes(parquet_bytes)
    monkeypatch.setattr(data, "TLC_BASE_URL", served.url)

    path = data.fetch_month(MONTH, mirror=str(tmp_path), progress=False, checksums={})

    assert path.read_bytes() == parquet_bytes


def test_a_busy_server_is_retried(served, cache, parquet_bytes):
    (served.folder / FILENAME).write_bytes(parquet_bytes)
    served.failures[FILENAME] = [503, 502]

    path = data.fetch_month(MONTH, mirror=served.url, progress=False, checksums=_checksums(parquet_bytes))

    assert path.read_bytes() == parquet_bytes and served.failures[FILENAME] == []


# --- real months: what is refused ---------------------------------------------------------------------


def test_checksum_mismatch_is_a_clear_error_and_leaves_nothing(served, cache, parquet_bytes):
    (served.folder / FILENAME).write_bytes(parquet_bytes)

    with pytest.raises(data.DataError, match=f"checksum mismatch for {FILENAME} from {served.url}") as error:
        data.fetch_month(MONTH, mirror=served.url, progress=False, checksums={FILENAME: "0" * 64})

    assert "\n" not in str(error.value)
    assert _leftovers(cache) == []


def test_a_directory_mirror_copy_is_verified_too(tmp_path, cache, parquet_bytes):
    (tmp_path / FILENAME).write_bytes(parquet_bytes)

    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.fetch_month(MONTH, mirror=str(tmp_path), progress=False, checksums={FILENAME: "0" * 64})

    assert _leftovers(cache) == []


def test_an_xml_access_denied_page_is_rejected_and_leaves_nothing(served, cache):
    (served.folder / FILENAME).write_bytes(ACCESS_DENIED)

    with pytest.raises(data.DataError, match=r"not a parquet file but an XML error page \(AccessDenied\)"):
        data.fetch_month(MONTH, mirror=served.url, progress=False, checksums={})

    assert _leftovers(cache) == []


@pytest.mark.parametrize("status", [403, 404])
def test_an_http_error_names_the_status_and_leaves_nothing(served, cache, status):
    served.failures[FILENAME] = [status]

    with pytest.raises(data.DataError, match=f"answered HTTP {status} .*check that the month is published"):
        data.fetch_month(MONTH, mirror=served.url, progress=False)

    assert _leftovers(cache) == []


def test_the_error_names_every_place_tried(served, cache, dead_url):
    with pytest.raises(data.DataError) as error:
        data.fetch_month(MONTH, mirror=served.url, progress=False)

    message = str(error.value)
    assert message.startswith(f"no copy of {FILENAME} could be had")
    assert f"{served.url}{FILENAME} answered HTTP 404" in message
    assert f"cannot reach {dead_url}{FILENAME}" in message  # the public address, after retries
    assert "\n" not in message


def test_a_bad_month_is_refused_before_any_network(cache):
    with pytest.raises(config.ConfigError, match="YYYY-MM"):
        data.fetch_month("2021-13")
    with pytest.raises(config.ConfigError):  # a typo is an error, not a reason to fall back
        data.resolve_months(["2021-1"], mode="auto")
    assert _leftovers(cache) == []


# --- choosing real or sample --------------------------------------------------------------------------


def test_auto_mode_falls_back_to_the_sample_loudly(served, cache, monkeypatch, capsys):
    monkeypatch.setenv("WEEK2_TLC_MIRROR", served.url)  # an empty mirror: every month is a 404

    with pytest.warns(UserWarning, match="USING THE SYNTHETIC SAMPLE: no copy of green_tripdata_2021-01"):
        source, paths = data.resolve_months(["2021-01", "2021-02"], mode="auto")

    assert source == "sample"
    assert [data.source_of(p) for p in paths] == ["sample", "sample"]
    assert all(p.is_file() for p in paths)
    assert "USING THE SYNTHETIC SAMPLE" in capsys.readouterr().err
    with pytest.raises(data.DataError, match="HTTP 404"):
        data.resolve_months(["2021-01"], mode="real")


def test_python_m_week2_data_says_the_fallback_once(served, cache, monkeypatch, capsys):
    """On the command line the banner is the message: no UserWarning repeats it beneath."""
    monkeypatch.setenv("WEEK2_TLC_MIRROR", served.url)
    monkeypatch.setenv("WEEK2_DATA", "auto")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a UserWarning would fail the command here
        assert data.main_data(["2021-01"]) == 0

    err = capsys.readouterr().err
    assert err.count("USING THE SYNTHETIC SAMPLE") == 1, err


def test_auto_mode_never_mixes_real_and_sample(served, cache, parquet_bytes, monkeypatch):
    (served.folder / FILENAME).write_bytes(parquet_bytes)  # January is there, February is not
    monkeypatch.setattr(data, "known_sha256", lambda: {})  # the served January is a stand-in
    monkeypatch.setenv("WEEK2_TLC_MIRROR", served.url)
    monkeypatch.setenv("WEEK2_DATA", "auto")

    with pytest.warns(UserWarning, match="green_tripdata_2021-02"):
        source, paths = data.resolve_months(["2021-01", "2021-02"])

    assert source == "sample" and {data.source_of(p) for p in paths} == {"sample"}
    with pytest.warns(UserWarning):
        assert data.source_of(data.month_path("2021-02")) == "sample"
    assert data.source_of(data.month_path(MONTH)) == "real"


def test_sample_mode_never_touches_the_network(served, cache, monkeypatch):
    monkeypatch.setenv("WEEK2_TLC_MIRROR", served.url)
    served.failures[FILENAME] = [500] * 10  # would fail loudly if asked

    source, (path,) = data.resolve_months([MONTH], mode="sample")

    assert source == "sample" and path == cache / "sample" / FILENAME
    assert served.failures[FILENAME] == [500] * 10


def test_an_unknown_mode_is_refused(cache):
    with pytest.raises(config.ConfigError, match="real, sample, auto"):
        data.resolve_months([MONTH], mode="offline")


@pytest.mark.real_data
def test_real_mode_uses_the_shared_mirror_when_present(cache, monkeypatch):
    shared = real_month(MONTH)
    monkeypatch.setenv("WEEK2_TLC_MIRROR", str(shared.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the real file is had
        source, (path,) = data.resolve_months([MONTH], mode="real")
    assert source == "real" and data.source_of(path) == "real"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.known_sha256()[FILENAME]


def test_the_command_line_says_where_each_month_is(cache, monkeypatch, capsys):
    monkeypatch.setenv("WEEK2_DATA", "sample")

    assert data.main_data(["2022-02", "2022-03"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["2022-02", "sample", str(cache / "sample" / "green_tripdata_2022-02.parquet")],
        ["2022-03", "sample", str(cache / "sample" / "green_tripdata_2022-03.parquet")],
    ]
    assert all(line.endswith(" MB") for line in lines)


# --- the synthetic sample -----------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize("month", ["2021-01", "2022-01", "2023-01"])
def test_synthetic_schema_equals_the_real_files(month, cache):
    real_path = real_month(month)
    real = pd.read_parquet(real_path)
    sample = data.synthetic_month(month, rows=1000, seed=3)

    assert list(sample.columns) == list(real.columns)
    assert sample.dtypes.to_dict() == real.dtypes.to_dict()
    # nulls where the real files have them, and only there
    assert set(sample.columns[sample.isna().any()]) == set(real.columns[real.isna().any()])
    # the file written for the notebooks has the real arrow schema, too
    real_schema = pq.read_schema(real_path).remove_metadata()
    assert pq.read_schema(data.sample_month_path(month)).remove_metadata().equals(real_schema)


def test_synthetic_month_is_deterministic_by_seed_and_month():
    first = data.synthetic_month("2021-02", rows=3000, seed=7)
    pd.testing.assert_frame_equal(first, data.synthetic_month("2021-02", rows=3000, seed=7))
    assert not first.equals(data.synthetic_month("2021-02", rows=3000, seed=8))
    assert not first.equals(data.synthetic_month("2021-03", rows=3000, seed=7))


def test_synthetic_month_defaults_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("WEEK2_SAMPLE_ROWS", "1234")
    monkeypatch.setenv("WEEK2_SEED", "5")
    pd.testing.assert_frame_equal(data.synthetic_month(MONTH), data.synthetic_month(MONTH, 1234, 5))


def test_synthetic_month_is_plausible():
    frame = data.synthetic_month("2021-02", rows=20_000, seed=7)

    minutes = (frame.lpep_dropoff_datetime - frame.lpep_pickup_datetime).dt.total_seconds() / 60
    assert 0.005 < (minutes < 1).mean() < 0.05 and 0.005 < (minutes > 60).mean() < 0.05
    assert frame.lpep_pickup_datetime.dt.month.eq(2).all()
    assert 0.01 < frame.trip_distance.eq(0).mean() < 0.05
    assert frame.trip_distance.median() < frame.trip_distance.mean()  # skewed: a long tail
    assert frame[["PULocationID", "DOLocationID"]].stack().between(1, 265).all()
    assert frame.ehail_fee.isna().all()
    assert 0.3 < frame.payment_type.isna().mean() < 0.6
    kept = minutes.between(1, 60)
    assert minutes[kept].corr(frame.trip_distance[kept]) > 0.5  # longer trips take longer


def test_the_zone_pair_matters_and_a_linear_model_learns(cache, monkeypatch):
    monkeypatch.setenv("WEEK2_SAMPLE_ROWS", "20000")
    (X_train, y_train), (X_val, y_val) = (
        utils.split_xy(utils.read_dataframe(data.sample_month_path(month)))
        for month in ("2021-01", "2021-02")
    )
    no_zones = {"PULocationID": 1, "DOLocationID": 1}

    with_pairs = utils.make_pipeline(LinearRegression()).fit(X_train, y_train)
    distance_only = utils.make_pipeline(LinearRegression()).fit(X_train.assign(**no_zones), y_train)

    rmse = utils.rmse(y_val, with_pairs.predict(X_val))
    assert 5 < rmse < 10  # the real months give about 7.8
    assert rmse < 0.95 * utils.rmse(y_val, distance_only.predict(X_val.assign(**no_zones)))


def test_synthetic_month_is_fast():
    started = time.perf_counter()
    data.synthetic_month(MONTH, rows=20_000, seed=1)
    assert time.perf_counter() - started < 1.0


def test_sample_file_is_kept_while_its_settings_hold_and_regenerated_when_they_change(cache, monkeypatch):
    monkeypatch.setenv("WEEK2_SAMPLE_ROWS", "300")
    path = data.sample_month_path(MONTH)
    written = path.stat().st_mtime_ns
    assert len(pd.read_parquet(path)) == 300
    assert data.sample_month_path(MONTH).stat().st_mtime_ns == written

    monkeypatch.setenv("WEEK2_SAMPLE_ROWS", "400")
    assert len(pd.read_parquet(data.sample_month_path(MONTH))) == 400
    monkeypatch.setenv("WEEK2_SEED", "9")
    pd.testing.assert_frame_equal(
        pd.read_parquet(data.sample_month_path(MONTH)), data.synthetic_month(MONTH, 400, 9)
    )
    path.write_bytes(b"not parquet")  # a damaged sample is generated again
    assert len(pd.read_parquet(data.sample_month_path(MONTH))) == 400
    assert _leftovers(path.parent) == [FILENAME]


def test_there_is_a_sample_only_of_green_trips(cache):
    with pytest.raises(data.DataError, match="no synthetic sample of yellow trips"):
        data.sample_month_path(MONTH, dataset="yellow")
    with pytest.raises(data.DataError, match="no copy of yellow_tripdata_2021-01.parquet"):
        data.resolve_months([MONTH], dataset="yellow", mode="auto")  # nothing to fall back to
