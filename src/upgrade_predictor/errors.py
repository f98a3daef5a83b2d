"""The one exception type that means "the user's input is wrong" (exit code 2, no traceback)."""


class InputError(Exception):
    """Bad input: the message names the problem and the row or column, and says what to do."""

    exit_code = 2
