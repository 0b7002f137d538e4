class SpecScopeError(Exception):
    """A problem the user can fix (bad input, missing package). Front ends print it as one line."""
