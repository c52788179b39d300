"""The one exception type users see for bad input: it names the file and the problem."""


class InputError(ValueError):
    """Bad user input (file, metadata, parameter); the message says what and where."""
