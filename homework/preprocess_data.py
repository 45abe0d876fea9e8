"""Q2: turn three months of green taxi trips into the homework's four pickles. Nothing to add here.

It writes `dv.pkl` (the DictVectorizer fitted on the training month) and `train.pkl`, `val.pkl`,
`test.pkl` (each an `(X, y)` tuple: the sparse feature matrix and the trip durations in minutes).
The preprocessing is the course's, from `week2.utils`: durations from the lpep times kept within
1..60 minutes, zone IDs as strings, `PU_DO` categorical and `trip_distance` numerical.

    python preprocess_data.py --raw_data_path <TAXI_DATA_FOLDER> --dest_path ./output
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from common import HOMEWORK_MONTHS, Folder, Month, dump_pickle, run_cli
from sklearn.feature_extraction import DictVectorizer

from week2 import config, data, utils


def month_files(raw_data_path: Path | None, months: list[str]) -> list[Path]:
    """The train, val and test months' parquet files: from `raw_data_path` if given, else via week2.data."""
    if raw_data_path is None:
        try:
            source, paths = data.resolve_months(months)
        except (config.ConfigError, data.DataError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"data: {source} ({', '.join(months)})")
        return paths
    paths = [raw_data_path / data.month_filename(month) for month in months]
    for path in paths:
        if not path.is_file():
            raise click.ClickException(
                f"{path} not found: download it into {raw_data_path}, or leave out --raw_data_path "
                "to let week2 get the months."
            )
    return paths


@click.command()
@click.option(
    "--raw_data_path",
    type=Folder("the folder with the green_tripdata_YYYY-MM.parquet files"),
    default=None,
    help="Folder with the green_tripdata_YYYY-MM.parquet files; default: get them as the "
    "course does (cache, WEEK2_TLC_MIRROR, download; the sample when WEEK2_DATA=sample).",
)
@click.option(
    "--dest_path",
    type=Folder("a folder to write the pickles to, e.g. ./output", writable=True),
    default="output",
    show_default=True,
    help="Folder the four pickles are written to.",
)
@click.option("--train_month", type=Month(), default=HOMEWORK_MONTHS[0], show_default=True)
@click.option("--val_month", type=Month(), default=HOMEWORK_MONTHS[1], show_default=True)
@click.option("--test_month", type=Month(), default=HOMEWORK_MONTHS[2], show_default=True)
def run_data_prep(
    raw_data_path: Path | None,
    dest_path: Path,
    train_month: str,
    val_month: str,
    test_month: str,
) -> None:
    """Fit a DictVectorizer on the training month; write dv.pkl, train.pkl, val.pkl and test.pkl."""
    paths = month_files(raw_data_path, [train_month, val_month, test_month])
    try:
        df_train, df_val, df_test = (utils.read_dataframe(path) for path in paths)
    except data.DataError as error:  # a file that is not a whole TLC month
        raise click.ClickException(str(error)) from None

    dv = DictVectorizer()
    X_train = dv.fit_transform(utils.feature_dicts(df_train))
    X_val = dv.transform(utils.feature_dicts(df_val))
    X_test = dv.transform(utils.feature_dicts(df_test))

    dest_path.mkdir(parents=True, exist_ok=True)
    dump_pickle(dv, dest_path / "dv.pkl")
    for name, X, df in (("train", X_train, df_train), ("val", X_val, df_val), ("test", X_test, df_test)):
        dump_pickle((X, df[utils.TARGET].to_numpy()), dest_path / f"{name}.pkl")
    click.echo(
        f"wrote dv.pkl, train.pkl, val.pkl, test.pkl to {dest_path} "
        f"({X_train.shape[0]}/{X_val.shape[0]}/{X_test.shape[0]} trips, {len(dv.feature_names_)} features)"
    )


if __name__ == "__main__":
    sys.exit(run_cli(run_data_prep))
