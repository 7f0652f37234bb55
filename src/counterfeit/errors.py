"""One exception type for bad input from a user.

The CLI turns a UserError into one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""


class UserError(Exception):
    """Bad input from the user: unknown name, wrong type, missing/corrupt file, bad checkpoint..."""
