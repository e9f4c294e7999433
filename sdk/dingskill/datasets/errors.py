"""The error raised for input that cannot be read as a dataset."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """Bad dataset input; the message names the file, the line and the field."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.line, self.field = file, line, field
        where = file or "<data>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {message}" + (f" (field '{field}')" if field else ""))
