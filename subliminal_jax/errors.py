"""One exception type for everything a user can fix.

CLIs catch it and print `error: <message>` on one line (exit 2) instead of a
traceback; the message names the problem and the fix.
"""


class UserError(Exception):
    """Bad input or impossible config: the message says what and how to fix it."""
