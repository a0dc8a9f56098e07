class InputError(Exception):
    """A problem with the user's input: reported as one line, exit status 2.  ``path``, when
    given, is the file at fault (named in a step's summary of unreadable inputs)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path
