"""CSV cells a spreadsheet will not run (CSV injection, as OWASP describes it).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, DDE). Every CSV the
project writes from text it did not write itself (the review export of chat text, datasets
written back) goes through :func:`neutralise`: such a cell gets a single quote in front, and
:func:`writer` quotes every text cell. :func:`restore` undoes it when the project reads its
own CSV back, so a labelled review file trains on the text the user typed.

This module imports nothing of dingskill, so every layer may use it."""

from __future__ import annotations

import csv

__all__ = ["FORMULA_START", "neutralise", "restore", "writer"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell):
    """``cell`` made inert for a spreadsheet (numbers and other text unchanged)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """The text :func:`neutralise` was given (a quote before a formula start is dropped)."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "".join(FORMULA_START):
        return cell[1:]
    return cell


class _SafeWriter:
    def __init__(self, fh, **kw) -> None:
        self._w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC, **kw)

    def writerow(self, row) -> None:
        self._w.writerow([neutralise(c) for c in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def writer(fh, lineterminator: str = "\n") -> _SafeWriter:
    """A ``csv.writer`` whose text cells are neutralised and always quoted."""
    return _SafeWriter(fh, lineterminator=lineterminator)
