"""The one error type the CLI turns into a clean message (no traceback)."""


class HytaxError(Exception):
    """Bad input or configuration; the message names the file (and record/line) at fault."""
