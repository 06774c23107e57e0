"""A request the server refuses: a 4xx status and one message naming the field at fault."""

from __future__ import annotations


class RequestError(ValueError):
    """Answered as `{"message": ..., "field": ...}` with `status` (400 unless said)."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def body(self) -> dict[str, str]:
        return {"message": self.message, "field": self.field}
