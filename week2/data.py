"""The course data: real TLC green taxi months, or a synthetic sample with the same schema.

A real month is resolved from, in order: the cache in `config.data_dir()`, a mirror
(`WEEK2_TLC_MIRROR`: a directory or a base URL), then the city's public address. Every copy into
the cache goes to a temporary file beside it first, is checked (the parquet signature always, the
sha256 of `tlc_sha256.txt` where the course knows it) and only then renamed into place, so a failed
or interrupted download never leaves a partial file behind; the `.part` file of a process that was
killed mid-download is removed by the next one. A cached file gets the same checks, and one that
fails them (a truncated or foreign file) is fetched again and replaced, never used.

pooch streams the downloads (with its tqdm progress bar); the loop around it is ours because
`pooch.Pooch.fetch` moves a file into place before we could check that it is parquet at all, and
retries every failure, a checksum mismatch included, where only network trouble is worth a retry.

The synthetic sample has the exact schema of the TLC green files of 2021 to January 2023 (from
February 2023 the city stores some of the same columns with other integer widths) and plausible
distributions. It is deterministic by seed, so tests and offline runs are repeatable. Generated
months live in `config.data_dir() / "sample"`, apart from the real ones, which is how
`source_of` tells them apart.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from week2 import config
from week2.errors import Week2Error
from week2.files import atomic_path, remove_partials

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data/"
SAMPLE_DIR_NAME = "sample"
SAMPLE_DATASET = "green"
PARQUET_MAGIC = b"PAR1"
DOWNLOAD_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 1.0  # times the attempt number: 1 s, then 2 s
TIMEOUT_SECONDS = (10, 60)  # to connect, then between two chunks of the body
TRANSIENT_HTTP_STATUS = frozenset({429, 500, 502, 503, 504})


class DataError(Week2Error, RuntimeError):
    """A month could not be had; the one-line message says what to do."""


def month_filename(month: str, dataset: str = "green") -> str:
    """`green_tripdata_2021-01.parquet` for ("2021-01", "green"); a ConfigError for a bad month."""
    config.check_month(month)
    return f"{dataset}_tripdata_{month}.parquet"


def known_sha256() -> dict[str, str]:
    """sha256 of the public files the course knows, by file name (week2/tlc_sha256.txt)."""
    text = resources.files("week2").joinpath("tlc_sha256.txt").read_text()
    pairs = (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name: digest for digest, name in pairs}


# --- real months ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_parquet(path: Path, origin: str, remedy: str) -> None:
    """Raise DataError unless `path` has the parquet signature at both ends."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(512)
        handle.seek(max(size - len(PARQUET_MAGIC), 0))
        tail = handle.read()
    if size > 2 * len(PARQUET_MAGIC) and head.startswith(PARQUET_MAGIC) and tail == PARQUET_MAGIC:
        return
    if head.lstrip().startswith(b"<"):
        # S3 and CloudFront answer a month that is not published with an XML error page, which
        # naive downloads save under the .parquet name.
        code = re.search(rb"<Code>(\w+)</Code>", head)
        sent = f"an XML error page ({code[1].decode()})" if code else "an XML/HTML page"
        raise DataError(f"{origin} is not a parquet file but {sent}: {remedy}.")
    raise DataError(f"{origin} is not a whole parquet file ({size} bytes): {remedy}.")


def _verify(path: Path, filename: str, origin: str, expected_sha256: str | None, remedy: str) -> None:
    """Raise DataError unless `path`, a copy of `filename` from `origin`, is parquet with the known sha256."""
    _check_parquet(path, origin, remedy)
    if expected_sha256 and _sha256(path) != expected_sha256:
        raise DataError(
            f"checksum mismatch for {filename} from {origin}: {remedy} "
            "(or, if the city republished the file, update week2/tlc_sha256.txt)."
        )


def _download(url: str, target: Path, progress: bool) -> None:
    """Stream `url` into `target`, retrying network trouble and busy servers a few times."""
    import pooch
    import requests

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT_SECONDS)
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            downloader(url, str(target), None)  # truncates `target` on every attempt
            return
        except requests.HTTPError as error:
            status = error.response.status_code
            if status not in TRANSIENT_HTTP_STATUS or attempt == DOWNLOAD_ATTEMPTS:
                # CloudFront answers 403 AccessDenied, not 404, for a month it does not have.
                raise DataError(
                    f"{url} answered HTTP {status} {error.response.reason}: "
                    "check that the month is published, or the mirror."
                ) from None
        except requests.RequestException as error:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise DataError(
                    f"cannot reach {url} ({type(error).__name__}): "
                    "check the network, or set WEEK2_TLC_MIRROR to a copy of the files."
                ) from None
        time.sleep(RETRY_DELAY_SECONDS * attempt)


def _copy_into_cache(
    origin: str, destination: Path, expected_sha256: str | None, progress: bool, remedy: str
) -> Path:
    """Download or copy `origin` to a temporary file beside `destination`, verify, rename into place."""
    with atomic_path(destination) as temporary:
        if origin.startswith(("http://", "https://")):
            if progress:
                print(f"downloading {origin}", file=sys.stderr, flush=True)
            _download(origin, temporary, progress)
        else:
            shutil.copyfile(origin, temporary)
        _verify(temporary, destination.name, origin, expected_sha256, remedy)
    return destination


def _origins(filename: str, mirror: str | None) -> list[str]:
    """Where a month can come from, after the cache: the mirror if any, then the public address."""
    origins = []
    if mirror:
        if mirror.startswith(("http://", "https://")):
            origins.append(mirror.rstrip("/") + "/" + filename)
        else:
            origins.append(str(Path(mirror).expanduser() / filename))
    origins.append(TLC_BASE_URL + filename)
    return origins


def fetch_month(
    month: str,
    dataset: str = "green",
    *,
    mirror: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Path:
    """The real month's parquet file in the cache, fetched first if it is not there yet.

    `mirror` defaults to `WEEK2_TLC_MIRROR` ("" means none); `cache_dir` to `config.data_dir()`;
    `checksums` (sha256 by file name) to the course's registry, `known_sha256()`.
    Raises DataError, naming every place tried, when no verified copy can be had.
    """
    filename = month_filename(month, dataset)
    destination = Path(cache_dir or config.data_dir()) / filename
    expected_sha256 = (known_sha256() if checksums is None else checksums).get(filename)
    errors = []
    if destination.parent.is_dir():
        remove_partials(destination.parent)
    damage = None
    if destination.is_file():
        try:
            _verify(
                destination,
                filename,
                str(destination),
                expected_sha256,
                "kept until a verified copy replaces it",
            )
            return destination
        except DataError as error:  # a damaged copy: replace it with a good one, or say why not
            damage = str(error).rstrip(".")
            errors.append(damage)

    mirror = config.tlc_mirror() if mirror is None else mirror
    remedy = "check that the month is published, or the mirror"
    for origin in _origins(filename, mirror):
        if not origin.startswith(("http://", "https://")) and not Path(origin).is_file():
            errors.append(f"{origin} does not exist")
            continue
        try:
            _copy_into_cache(origin, destination, expected_sha256, progress, remedy)
        except DataError as error:
            errors.append(str(error).rstrip("."))
            continue
        if damage:
            print(f"replaced the damaged {destination} with a verified copy from {origin}", file=sys.stderr)
        return destination
    raise DataError(f"no copy of {filename} could be had: {'; '.join(errors)}.")


# --- the synthetic sample -------------------------------------------------------------------------

GREEN_SCHEMA = pa.schema(
    [
        ("VendorID", pa.int64()),
        ("lpep_pickup_datetime", pa.timestamp("us")),
        ("lpep_dropoff_datetime", pa.timestamp("us")),
        ("store_and_fwd_flag", pa.string()),
        ("RatecodeID", pa.float64()),
        ("PULocationID", pa.int64()),
        ("DOLocationID", pa.int64()),
        ("passenger_count", pa.float64()),
        ("trip_distance", pa.float64()),
        ("fare_amount", pa.float64()),
        ("extra", pa.float64()),
        ("mta_tax", pa.float64()),
        ("tip_amount", pa.float64()),
        ("tolls_amount", pa.float64()),
        ("ehail_fee", pa.null()),
        ("improvement_surcharge", pa.float64()),
        ("total_amount", pa.float64()),
        ("payment_type", pa.float64()),
        ("trip_type", pa.float64()),
        ("congestion_surcharge", pa.float64()),
    ]
)
"""The arrow schema of the TLC green files of 2021 to January 2023, column for column."""

SAMPLE_GENERATOR_VERSION = 1
"""Part of a sample file's identity: bump it when `synthetic_month` changes, so caches regenerate."""

_ZONES = 265
# The busiest green-taxi pickup zones in the real files (East and Central Harlem, Jamaica, ...).
_BUSY_ZONES = np.array([74, 75, 41, 42, 244, 95, 97, 166, 65, 43, 61, 7, 130, 116, 82])
_ZONE_PAIRS = 3000  # before duplicates are dropped; the real months use 10 to 15 thousand
# Share of pickups per hour of day, as in the real files (percent).
_HOURLY_PICKUPS = np.array(
    [0.7, 0.4, 0.3, 0.3, 0.5, 1.1, 2.2, 4.5, 6.5, 7.9, 8.1, 7.6, 7.6, 7.9, 7.5, 7.4, 7.1, 5.9, 5.0, 4.1]
    + [2.8, 1.9, 1.5, 1.1]
)


class _ZonePairs(NamedTuple):
    """The trips' zone pairs with how often, how far and how fast they are travelled."""

    pickup: np.ndarray
    dropoff: np.ndarray
    share: np.ndarray
    miles: np.ndarray
    mph: np.ndarray


def _zone_pairs(seed: int) -> _ZonePairs:
    """The sample's city, the same for every month of a seed so a model fitted on one month carries over."""
    rng = np.random.default_rng(seed)
    zone_mph = rng.uniform(8, 18, _ZONES + 1)  # index = zone ID, 0 unused
    popularity = np.ones(_ZONES + 1)
    popularity[0] = 0
    popularity[_BUSY_ZONES] = 15
    popularity /= popularity.sum()

    pickup = rng.choice(_ZONES + 1, _ZONE_PAIRS, p=popularity)
    stays = rng.random(_ZONE_PAIRS) < 0.1  # a tenth of the real trips end in the zone they began
    dropoff = np.where(stays, pickup, rng.choice(_ZONES + 1, _ZONE_PAIRS, p=popularity))
    _, first = np.unique(pickup * 1000 + dropoff, return_index=True)
    pickup, dropoff = pickup[np.sort(first)], dropoff[np.sort(first)]
    count = len(pickup)

    # Most trips are short hops between neighbouring zones, with a long tail across the city.
    miles = np.where(pickup == dropoff, rng.uniform(0.3, 1.5, count), rng.lognormal(np.log(2.5), 0.65, count))
    # Long trips take highways, so they go faster. A pair's own factor on top of its zones' speeds
    # (bridges, one-way detours) is what makes the pair (PU_DO), not just distance, worth learning.
    highway = (miles / 2.5) ** 0.3
    mph = (zone_mph[pickup] + zone_mph[dropoff]) / 2 * highway * rng.lognormal(0, 0.3, count)
    share = 1 / np.arange(1, count + 1) ** 0.6  # a few popular pairs, a long tail of rare ones
    return _ZonePairs(pickup, dropoff, share / share.sum(), miles, mph)


def synthetic_month(month: str, rows: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """A month of made-up green taxi trips with the TLC schema; the same arguments give the same frame.

    `rows` defaults to `config.sample_rows()`, `seed` to `config.seed()`; months of one seed differ
    in their trips but share the city (zones, distances, speeds).
    """
    config.check_month(month)
    rows = config.sample_rows() if rows is None else rows
    seed = config.seed() if seed is None else seed
    year, month_number = map(int, month.split("-"))
    rng = np.random.default_rng([seed, year, month_number])
    pairs = _zone_pairs(seed)

    start = np.datetime64(month, "M")
    days = ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(int)
    drawn_hour = rng.choice(24, rows, p=_HOURLY_PICKUPS / _HOURLY_PICKUPS.sum())
    offset = rng.integers(0, days, rows) * 86_400 + drawn_hour * 3_600 + rng.integers(0, 3_600, rows)
    offset = np.sort(offset)  # seconds into the month, in order, so the frame reads as a log
    pickup = start.astype("datetime64[us]") + offset * np.timedelta64(1_000_000, "us")
    hour = offset % 86_400 // 3_600

    pair = rng.choice(len(pairs.share), rows, p=pairs.share)
    miles = pairs.miles[pair] * rng.lognormal(0, 0.35, rows)
    rush = _HOURLY_PICKUPS[hour] / _HOURLY_PICKUPS.max()  # busier hours, slower traffic
    mph = pairs.mph[pair] * (1.3 - 0.4 * rush)
    # Three minutes to get going, then the ride; lights and luck make longer trips vary more.
    minutes = (3 + miles / mph * 60) * rng.lognormal(0, 0.3, rows)
    # Outliers the course's 1..60 minute filter removes: trips cancelled at once, meters left running.
    outlier = rng.random(rows)
    minutes = np.where(outlier < 0.015, rng.uniform(0, 1, rows), minutes)
    minutes = np.where(outlier > 0.992, np.exp(rng.uniform(np.log(61), np.log(1440), rows)), minutes)
    minutes = minutes.clip(0, None)
    dropoff = pickup + np.round(minutes * 60).astype("int64") * np.timedelta64(1_000_000, "us")
    # Some meters record no distance although the cab moved: the duration keeps the real one.
    distance = np.where(rng.random(rows) < 0.03, 0.0, np.round(miles, 2))

    # In the real files about 47% of the trips, nearly all of vendor 2, leave these six columns
    # empty together (and pay no MTA tax).
    empty = rng.random(rows) < 0.47

    def pick(values, shares):
        return rng.choice(np.asarray(values, dtype=float), rows, p=np.divide(shares, sum(shares)))

    def blank_if_empty(values):
        return np.where(empty, np.nan, values)

    payment_type = blank_if_empty(pick([1, 2, 3, 4], [60.4, 38.8, 0.6, 0.2]))
    fare = np.round(2.5 + 2.5 * distance + 0.35 * minutes.clip(0, 120), 2)
    extra = pick([0, 0.5, 1, 2.75], [62, 7, 11, 20])
    mta_tax = np.where(empty, 0.0, 0.5)
    tipped = (payment_type == 1) | (empty & (rng.random(rows) < 0.6))
    tip = np.round(np.where(tipped, fare * rng.uniform(0.1, 0.25, rows), 0.0), 2)
    tolls = np.where(rng.random(rows) < 0.03, 6.12, 0.0)
    improvement_surcharge = np.full(rows, 0.3)
    congestion_surcharge = blank_if_empty(pick([0, 2.75], [78, 22]))
    total = fare + extra + mta_tax + tip + tolls + improvement_surcharge + np.nan_to_num(congestion_surcharge)
    store_and_fwd_flag = np.where(empty, None, rng.choice(["N", "Y"], rows, p=[0.993, 0.007]))

    columns = {
        "VendorID": np.where(empty | (rng.random(rows) < 0.82), 2, 1),
        "lpep_pickup_datetime": pickup,
        "lpep_dropoff_datetime": dropoff,
        "store_and_fwd_flag": store_and_fwd_flag,
        "RatecodeID": blank_if_empty(pick([1, 5, 2, 4, 3], [96.4, 3.4, 0.1, 0.08, 0.02])),
        "PULocationID": pairs.pickup[pair],
        "DOLocationID": pairs.dropoff[pair],
        "passenger_count": blank_if_empty(pick([1, 2, 5, 3, 6, 4, 0], [90, 5.9, 1.8, 0.8, 0.8, 0.4, 0.3])),
        "trip_distance": distance,
        "fare_amount": fare,
        "extra": extra,
        "mta_tax": mta_tax,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "ehail_fee": pa.nulls(rows),
        "improvement_surcharge": improvement_surcharge,
        "total_amount": np.round(total, 2),
        "payment_type": payment_type,
        "trip_type": blank_if_empty(pick([1, 2], [97, 3])),
        "congestion_surcharge": congestion_surcharge,
    }
    # Through arrow, so the frame has exactly the dtypes pandas gives a real file it reads.
    return pa.table(columns, schema=GREEN_SCHEMA).to_pandas()


def _write_parquet_atomically(frame: pd.DataFrame, destination: Path, metadata: dict[bytes, bytes]) -> None:
    table = pa.Table.from_pandas(frame, schema=GREEN_SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, **metadata})
    with atomic_path(destination) as temporary:
        pq.write_table(table, temporary)


def _sample_identity(path: Path) -> bytes | None:
    """The settings a sample file was generated with, from its parquet metadata; None if unreadable."""
    try:
        return (pq.read_schema(path).metadata or {}).get(b"week2.sample")
    except (OSError, pa.ArrowException):  # a truncated or foreign file: generate it again
        return None


def sample_month_path(month: str, dataset: str = "green") -> Path:
    """The synthetic month in `<data dir>/sample/`, generated when missing or made with other settings.

    The rows, the seed and the generator version are stored in the file's parquet metadata; a file
    made with other values is replaced.
    """
    filename = month_filename(month, dataset)
    if dataset != SAMPLE_DATASET:
        raise DataError(f"there is no synthetic sample of {dataset} trips, only of {SAMPLE_DATASET} ones.")
    rows, seed = config.sample_rows(), config.seed()
    path = config.data_dir() / SAMPLE_DIR_NAME / filename
    if path.parent.is_dir():
        remove_partials(path.parent)
    identity = f"rows={rows};seed={seed};generator={SAMPLE_GENERATOR_VERSION}".encode()
    if not path.is_file() or _sample_identity(path) != identity:
        _write_parquet_atomically(synthetic_month(month, rows, seed), path, {b"week2.sample": identity})
    return path


# --- choosing real or sample ----------------------------------------------------------------------


def source_of(path: str | Path) -> str:
    """'sample' for a generated month, 'real' for a TLC file: the sample lives in a folder of its own."""
    return "sample" if Path(path).parent.name == SAMPLE_DIR_NAME else "real"


def _warn_fallback(reason: str, warn: bool) -> None:
    message = f"REAL DATA UNAVAILABLE, USING THE SYNTHETIC SAMPLE: {reason}"
    print(f"\n*** {message} ***\n", file=sys.stderr, flush=True)
    if warn:
        warnings.warn(message, UserWarning, stacklevel=3)


def resolve_months(
    months: Iterable[str], dataset: str = "green", mode: str | None = None, warn: bool = True
) -> tuple[str, list[Path]]:
    """Resolve several months with one decision: ("real", paths) or ("sample", paths), never a mix.

    `mode` defaults to `WEEK2_DATA`: "real" raises DataError when a month cannot be had, "sample"
    never touches the network, "auto" tries real and falls back to the sample for all months,
    loudly (a UserWarning and a banner on stderr naming why; command lines, whose banner is the
    message, pass `warn=False` so that it is not said twice).
    """
    months = list(months)
    for month in months:
        config.check_month(month)  # a typo is an error in every mode, never a reason to fall back
    mode = mode or config.data_mode()
    if mode not in config.DATA_MODES:
        raise config.ConfigError(f"data mode {mode!r} is not one of {', '.join(config.DATA_MODES)}.")
    if mode == "sample":
        return "sample", [sample_month_path(month, dataset) for month in months]
    try:
        return "real", [fetch_month(month, dataset) for month in months]
    except DataError as error:
        if mode == "real" or dataset != SAMPLE_DATASET:
            raise
        _warn_fallback(str(error), warn)
        return "sample", [sample_month_path(month, dataset) for month in months]


def month_path(month: str, dataset: str = "green", mode: str | None = None) -> Path:
    """One month's parquet file, real or sample as `WEEK2_DATA` (or `mode`) says; see resolve_months."""
    _, (path,) = resolve_months([month], dataset, mode)
    return path


def main_data(argv: list[str] | None = None) -> int:
    """`python -m week2 data [MONTH ...]`: get the months (default: the course's) and say where they are."""
    months = list(argv) if argv else list(vars(config.months()).values())
    source, paths = resolve_months(months, warn=False)
    for month, path in zip(months, paths, strict=True):
        print(f"{month}  {source:6}  {path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0
