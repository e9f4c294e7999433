"""Evaluation of intent classifiers: reports, plots, comparisons and the CLINC150 benchmark."""

from .compare import compare_reports
from .evaluate import evaluate
from .report import EvaluationReport

__all__ = ["EvaluationReport", "compare_reports", "evaluate"]
