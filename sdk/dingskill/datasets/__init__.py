"""Labelled-utterance datasets: loading, validation, splitting, language tags, CLINC150."""

from .clinc import fetch_clinc150
from .dataset import Dataset
from .errors import DatasetError
from .language import detect_language
from .loaders import load
from .validate import ValidationReport

__all__ = [
    "Dataset",
    "DatasetError",
    "ValidationReport",
    "detect_language",
    "fetch_clinc150",
    "load",
]
