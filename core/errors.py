"""The project's own errors: each carries a sentence a user can read."""


class CnnError(Exception):
    """Base class: `str(err)` is a complete sentence meant for the user."""


class DataError(CnnError):
    """A dataset source is missing, malformed or unusable."""


class ImageError(CnnError):
    """Bytes that cannot be turned into an image the model can read."""


class RunError(CnnError):
    """A training run cannot be started, found, resumed or loaded."""
