"""The one exception type that the command line turns into a one-line message."""


class ProcvlmError(Exception):
    """Bad input or state that a user can fix.

    The message is one line that names the input and says what to do, e.g.
    ``"/data/ds is not a LeRobot v3 dataset (no meta/info.json): pass the dataset's root folder"``.
    """
