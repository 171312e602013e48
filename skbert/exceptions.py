"""Warnings and exceptions that skbert raises and a caller may want to catch or filter.

Like :mod:`sklearn.exceptions`: a category to filter on, never a message to match.
"""

__all__ = ["TrainingInterrupted"]


class TrainingInterrupted(UserWarning):
    """Ctrl-C stopped ``fit`` after a complete optimizer step.

    The estimator keeps the weights of the last completed step. Turn it into an
    exception with ``warnings.filterwarnings("error", category=TrainingInterrupted)``
    to stop a script (the command line does this, and exits with 130).
    """
