"""What a logged model takes with it: the week2 code it imports and the packages it needs, nothing more.

MLflow infers a model's requirements by loading it in a subprocess and writing down every package
imported meanwhile, and libraries import optional extras: scikit-learn's joblib imports psutil, so
psutil lands in every scikit-learn model's requirements.txt. `model_dependencies` answers from what
the model really refers to instead:
- the week2 modules named in the pickles of the model's objects (the sweep's fitted pipeline
  names `week2.models.pu_do_and_distance`; `utils.make_pipeline`'s names none), copied into a
  `week2` package of their own for `code_paths`, so the model loads on a machine without this
  repository;
- pinned pip requirements for the packages those pickles and that code import, plus MLflow,
  which loads every model.

Notebook 05's custom model itself is `week2/duration_model.py` (`MODEL_FILE`), a model from code.
"""

from __future__ import annotations

import ast
import io
import pickle
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import packages_distributions, version
from pathlib import Path

from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_FILE = PACKAGE_DIR / "duration_model.py"
"""The custom model of notebook 05, logged from code (`python_model=MODEL_FILE`)."""
ALWAYS_NEEDED = ("mlflow",)
"""MLflow loads every model."""


def referenced_modules(*objects) -> set[str]:
    """Every module that the pickles of `objects` name (the classes and functions inside them)."""
    found: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    for obj in objects:
        Recorder(io.BytesIO(pickle.dumps(obj))).load()
    return found


def imported_modules(path: Path) -> set[str]:
    """The modules a Python file imports at its top level (what importing it needs)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from week2 import utils` imports the module week2.utils
            found.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
    return found


def week2_files(modules: set[str]) -> list[Path]:
    """The files of the week2 modules among `modules`, with the package's __init__.py."""
    names = {m.split(".")[1] for m in modules if m.startswith("week2.")}
    return [PACKAGE_DIR / "__init__.py", *(PACKAGE_DIR / f"{name}.py" for name in sorted(names))]


def pinned_requirements(modules: set[str]) -> list[str]:
    """`distribution==version` for the installed packages providing `modules` (not stdlib, not week2)."""
    providers = packages_distributions()
    top_level = {module.split(".")[0] for module in modules} - set(sys.stdlib_module_names) - {"week2"}
    distributions = dict.fromkeys(ALWAYS_NEEDED)  # ordered and without repeats
    for name in sorted(top_level):
        provided_by = providers.get(name, [name])  # `mlflow` is in mlflow, mlflow-skinny and mlflow-tracing
        distributions.update(dict.fromkeys([name] if name in provided_by else provided_by))
    return [f"{distribution}=={version(distribution)}" for distribution in distributions]


@contextmanager
def model_dependencies(
    *objects, model_file: Path | None = None, also: tuple[str, ...] = ()
) -> Iterator[tuple[list[str], list[str]]]:
    """`(code_paths, pip_requirements)` for a model made of `objects` (and `model_file`, if from code).

    `also` names modules the model's loader imports besides, e.g. `skops` for a scikit-learn model
    saved in MLflow's default format.
    The code is a temporary `week2` package holding only the modules the model refers to; it
    exists until the `with` block ends, long enough for `log_model` to copy it into the model.
    """
    modules = referenced_modules(*objects) | set(also)
    if model_file is not None:
        modules |= imported_modules(model_file)
    files = week2_files(modules)
    while True:  # the week2 modules that travel need what they import too, week2 modules included
        for path in files:
            modules |= imported_modules(path)
        if (needed := week2_files(modules)) == files:
            break
        files = needed
    with tempfile.TemporaryDirectory(prefix="week2-model-code-") as scratch:
        package = Path(scratch) / "week2"
        package.mkdir()
        for path in files:
            shutil.copy(path, package / path.name)
        yield [str(package)], pinned_requirements(modules)


TRIP_SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("long", "PULocationID"), ColSpec("long", "DOLocationID"), ColSpec("double", "trip_distance")]
    ),
    outputs=Schema([ColSpec("double")]),
)
"""Raw trip columns in (zone IDs as integers, as in the TLC files), minutes out: notebook 05 writes it out."""
