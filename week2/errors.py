"""The one error base class of the course: anything that subclasses it is a one-line message for a person.

`python -m week2`, the homework CLIs and the course runner catch `Week2Error`, print `error: <message>`
and exit with status 2; anything else is a bug and keeps its traceback.
"""


class Week2Error(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
