"""The one exception type handlers raise: it carries the Engine's status code, so the
middleware can answer `{"message": ...}` exactly as dockerd would."""

from __future__ import annotations


class ApiError(Exception):
    """An error the client should see, with the HTTP status the Engine uses for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)
