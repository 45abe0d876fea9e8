"""How `make homework` runs each of your scripts: as `python <script> <options>` does, with three changes.

    python homework/harness.py REPORT.json SCRIPT.py [OPTIONS...]

1. **One tracking store.** The official starters write `mlflow.set_tracking_uri("http://127.0.0.1:5000")`,
   and completed scripts keep such a line (another port, `localhost`, `sqlite:///mlflow.db`). Under
   `make homework` nothing may listen there, or `make ui` may, and the grade would depend on it. A
   tracking or registry URI on this machine, given to `set_tracking_uri`, `set_registry_uri` or
   `MlflowClient`, is replaced by the store `make homework` grades (MLFLOW_TRACKING_URI), and one line
   says so. An address on another machine is kept: the runs go there, and the grade says so.
2. **Memory.** After each autologged `fit`, MLflow 3.17 makes the sparse training matrix dense to
   describe it as a dataset (`_create_dataset` in mlflow/sklearn/__init__.py), then copies it again
   to fingerprint it: 3 GB twice for a real month. What it records of that dense matrix is its shape,
   dtype, size and a digest of its first 10,000 values. Here it gets a stand-in with exactly those
   (`DenseStandIn`), so autolog records the same dataset, digest included, without the 6 GB.
3. **A crash, in one line.** An exception that ends the script is printed as Python prints it (the
   runner keeps the traceback in the script's log) and written to REPORT.json: its type, its message,
   and the file and line of your script where it was raised, for the grader to show with a tip.

REPORT.json also lists the URIs that were replaced or kept. Nothing here changes what your code
computes or logs.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

HARNESS = Path(__file__).resolve()
LOOPBACK_NAMES = {"localhost", "0.0.0.0", "::1", "ip6-localhost"}
LOCAL_SCHEMES = {"", "file", "sqlite"}
"""Schemes of stores that are files on this machine (a bare path included)."""
DENSE_BYTES_WORTH_SAVING = 64 * 1024**2
"""Below this, autolog's dense copy is cheap: MLflow gets the real array."""


def is_local(uri: str) -> bool:
    """True when `uri` names a store on this machine: a file, a SQLite database, a loopback server."""
    from mlflow.utils.uri import is_databricks_uri

    if is_databricks_uri(str(uri)):  # "databricks" alone names a workspace, not a folder
        return False
    parts = urlsplit(str(uri))
    if parts.scheme.lower() in LOCAL_SCHEMES or len(parts.scheme) == 1:  # a Windows drive letter too
        return True
    host = (parts.hostname or "").lower()
    return host in LOOPBACK_NAMES or host.startswith("127.")


class Harness:
    """What one script's run under `make homework` changed and met, written to the report at exit."""

    def __init__(self, script: Path, graded_uri: str):
        self.script = script
        self.graded_uri = graded_uri
        self.redirected: list[dict] = []
        self.kept: list[dict] = []
        self.crash: dict | None = None

    # --- 1. one tracking store ------------------------------------------------------------------

    def where_in_script(self) -> int | None:
        """The line of the script that is calling MLflow now, if the script is on the stack."""
        frame = sys._getframe(1)
        while frame is not None:
            if Path(frame.f_code.co_filename).resolve() == self.script:
                return frame.f_lineno
            frame = frame.f_back
        return None

    def graded(self, uri, call: str):
        """`uri` as the script gave it, or the graded store's when it names a store on this machine."""
        if uri is None or str(uri) in ("", self.graded_uri):
            return uri
        line = self.where_in_script()
        seen = {(entry["uri"], entry["line"]) for entry in self.redirected + self.kept}
        if (str(uri), line) in seen:
            return self.graded_uri if is_local(uri) else uri
        at = f"{self.script.name}, line {line}" if line else self.script.name
        if is_local(uri):
            self.redirected.append({"call": call, "uri": str(uri), "line": line})
            print(
                f"make homework: {call}({str(uri)!r}) in {at} is overridden: the runs go to the store "
                f"make homework grades ({self.graded_uri}); the line is not needed here (homework/README.md)",
                flush=True,
            )
            return self.graded_uri
        self.kept.append({"call": call, "uri": str(uri), "line": line})
        print(
            f"make homework: {call}({str(uri)!r}) in {at} sends the runs to another machine, not to the "
            f"store make homework grades ({self.graded_uri})",
            flush=True,
        )
        return uri

    def keep_one_store(self) -> None:
        """Route the script's own tracking and registry URIs through `graded`."""
        import mlflow
        import mlflow.tracking
        from mlflow.tracking import _model_registry, _tracking_service

        tracking_utils, registry_utils = _tracking_service.utils, _model_registry.utils
        set_tracking_uri, set_registry_uri = tracking_utils.set_tracking_uri, registry_utils.set_registry_uri
        resolve_tracking_uri = tracking_utils._resolve_tracking_uri
        resolve_registry_uri = registry_utils._resolve_registry_uri

        def set_tracking(uri) -> None:
            set_tracking_uri(self.graded(uri, "mlflow.set_tracking_uri"))

        def set_registry(uri) -> None:
            set_registry_uri(self.graded(uri, "mlflow.set_registry_uri"))

        def resolve_tracking(tracking_uri=None):  # MlflowClient(tracking_uri=...)
            return resolve_tracking_uri(self.graded(tracking_uri, "MlflowClient"))

        def resolve_registry(registry_uri=None, tracking_uri=None):
            return resolve_registry_uri(
                self.graded(registry_uri, "MlflowClient"), self.graded(tracking_uri, "MlflowClient")
            )

        set_experiment = mlflow.set_experiment

        def set_experiment_in_store(experiment_name=None, experiment_id=None):
            if experiment_name:  # a new experiment gets the course's artifact location, as the runner's do
                from week2 import tracking

                tracking.setup_mlflow(experiment_name)
            return set_experiment(experiment_name=experiment_name, experiment_id=experiment_id)

        mlflow.set_experiment = mlflow.tracking.fluent.set_experiment = set_experiment_in_store
        for module in (mlflow, mlflow.tracking, tracking_utils):
            module.set_tracking_uri = set_tracking
        for module in (mlflow, mlflow.tracking, registry_utils):
            module.set_registry_uri = set_registry
        tracking_utils._resolve_tracking_uri = resolve_tracking
        registry_utils._resolve_registry_uri = resolve_registry
        set_tracking_uri(self.graded_uri)

    # --- 3. a crash, in one line ----------------------------------------------------------------

    def record_crash(self, error: BaseException) -> None:
        """The exception's type and one-line message, and where in the student's code it was raised."""
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if not frame.filename.startswith("<")
            and Path(frame.filename).resolve() != HARNESS
            and Path(frame.filename).resolve().parent == self.script.parent
        ]
        where = frames[-1] if frames else None
        self.crash = {
            "type": type(error).__name__,
            "message": " ".join(str(error).split()),
            "file": str(Path(where.filename).resolve()) if where else str(self.script),
            "line": where.lineno if where else None,
        }

    def write(self, report: Path) -> None:
        from week2.files import write_text_atomically

        content = {"redirected": self.redirected, "kept": self.kept, "crash": self.crash}
        write_text_atomically(report, json.dumps(content, indent=2) + "\n")


# --- 2. memory ----------------------------------------------------------------------------------


def dense_stand_in_class():
    import numpy as np

    class DenseStandIn(np.ndarray):
        """The shape, dtype and first values of a sparse matrix made dense, without its memory.

        A read-only view of one zero repeated over the whole shape (no memory per element), whose
        `flatten()` gives the matrix's true first values: all that MLflow's dataset reads (shape,
        size, nbytes, dtype for the schema and profile; the first 10,000 flattened values and the
        shape for the digest). Anything else that read its elements would see zeros, so it is
        handed only to autolog's `_create_dataset`.
        """

        head: np.ndarray

        @classmethod
        def of(cls, matrix, values_needed: int) -> DenseStandIn:
            columns = max(matrix.shape[1], 1)
            rows = min(matrix.shape[0], -(-values_needed // columns))
            view = np.lib.stride_tricks.as_strided(
                np.zeros(1, dtype=matrix.dtype), shape=matrix.shape, strides=(0, 0), writeable=False
            ).view(cls)
            view.head = np.asarray(matrix[:rows].todense()).ravel()
            return view

        def flatten(self, order="C"):
            return self.head

    return DenseStandIn


def keep_sparse_for_autolog() -> None:
    """Give autolog's `_create_dataset` a stand-in instead of a dense copy of a large sparse matrix."""
    from mlflow.data.digest_utils import MAX_ROWS
    from scipy import sparse

    stand_in = dense_stand_in_class()
    for cls in (sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array, sparse.csc_array):
        dense = cls.toarray

        def toarray(self, order=None, out=None, dense=dense):
            caller = sys._getframe(1)
            if (
                caller.f_code.co_name == "_create_dataset"
                and caller.f_globals.get("__name__") == "mlflow.sklearn"
                and out is None
                and self.shape[0] * self.shape[1] * self.dtype.itemsize >= DENSE_BYTES_WORTH_SAVING
            ):
                return stand_in.of(self, MAX_ROWS)
            return dense(self, order, out)

        cls.toarray = toarray


def main(report: Path, script: Path, args: list[str]) -> int:
    script = script.resolve()
    harness = Harness(script, os.environ.get("MLFLOW_TRACKING_URI", ""))
    if harness.graded_uri:
        harness.keep_one_store()
    keep_sparse_for_autolog()
    sys.argv = [str(script), *args]
    sys.path[0] = str(script.parent)  # as `python script.py` puts the script's folder first
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as done:  # sys.exit(...) as Python itself ends with it
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)
        return 1
    except Exception as error:
        harness.record_crash(error)
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        harness.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
