"""The error every training loop raises when too many steps in a row were non-finite."""


class TrainingDiverged(RuntimeError):
    """Raised after ``train.max_consecutive_nonfinite`` non-finite steps in a row."""
