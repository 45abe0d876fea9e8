# Loaded by every notebook kernel the test suite starts: conftest.py copies it into the IPython
# profile it points IPYTHONDIR at.
# A DeprecationWarning or FutureWarning attributed to notebook code (`__main__`) or to the week2
# package fails the cell, as the same warnings fail the unit tests; warnings raised inside
# libraries about their own internals are left alone.
import warnings

for _category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
    warnings.filterwarnings("error", category=_category, module="__main__")
    warnings.filterwarnings("error", category=_category, module="week2")
del _category
