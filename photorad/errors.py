"""One exception hierarchy for photorad.

Every error a user can provoke with bad input is a :class:`PhotoradError`, with a message a person
can act on. The CLI turns these into a one-line message and a non-zero exit status; the service
turns them into JSON errors with the ``http_status`` given here. Anything else escaping is a bug.
"""

from __future__ import annotations


class PhotoradError(Exception):
    """Base class of every error photorad raises on purpose."""

    #: Process exit status used by the CLI.
    exit_code: int = 2
    #: HTTP status used by the service.
    http_status: int = 422


class ImageError(PhotoradError):
    """Something is wrong with an input image file."""


class UnsupportedImageError(ImageError):
    """The file is not an image format photorad reads (or not an image at all)."""

    http_status = 415


class CorruptImageError(ImageError):
    """The file claims a supported format but cannot be decoded (truncated, damaged, empty)."""

    http_status = 422


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""

    http_status = 413


class ImageTooSmallError(ImageError):
    """The image is too small to be processed meaningfully."""

    http_status = 422


class NoScreenFoundError(PhotoradError):
    """No plausible displayed-image quadrilateral was found in the photo."""

    exit_code = 3
    http_status = 422


class InvalidCornersError(PhotoradError):
    """User-given corners are malformed, outside the photo or self-intersecting."""

    http_status = 422


class InvalidLesionBoxError(PhotoradError):
    """A user-given lesion box is malformed, empty or outside the rectified image."""

    http_status = 422


class NoLesionFoundError(PhotoradError):
    """No lesion the localizer can stand behind, and none was marked: no score is given.

    The pipeline does not raise this (it returns the images without a score, so that the user can
    mark the lesion); the CLI uses its exit code when it withholds a score.
    """

    exit_code = 6
    http_status = 422


class NotUltrasoundError(PhotoradError):
    """The image is not a breast-ultrasound image (input routing); no score is given."""

    exit_code = 7
    http_status = 422


class ModelError(PhotoradError):
    """A model checkpoint is missing, corrupt, has the wrong hash or an unknown architecture."""

    http_status = 500


class DicomError(PhotoradError):
    """A DICOM object cannot be read, written, de-identified or sent."""


class NetworkError(PhotoradError):
    """A remote archive could not be reached or rejected what was sent."""

    exit_code = 4
    http_status = 502


class AuditError(PhotoradError):
    """The audit log is corrupt or its hash chain is broken."""

    exit_code = 5


class ConfigError(PhotoradError):
    """A configuration file or option is invalid."""
