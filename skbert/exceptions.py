"""Warnings and exceptions that skbert raises and a caller may want to catch or filter.

Like :mod:`sklearn.exceptions`: a category to filter on, never a message to match.
"""

__all__ = ["TrainingInterrupted"]


class TrainingInterrupted(UserWarning):
    """Ctrl-C stopped ``fit`` after a complete optimizer step (skbert 0.1).

    Since Ctrl-C makes every ``fit`` and ``partial_fit`` raise ``KeyboardInterrupt``
    (the estimator keeping the weights of the last completed step, with
    ``interrupted_=True``), no skbert trainer warns this any more; the category stays
    so that filters naming it keep working.
    """
