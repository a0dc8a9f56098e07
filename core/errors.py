class InputError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""
