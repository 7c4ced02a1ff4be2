"""Training metrics to a CSV file and TensorBoard (rank 0 only).

``metrics.csv`` has one row per logged step and a fixed header (the keys of the first row);
on resume, rows of steps after the checkpoint (written before a crash) are dropped so the file
describes the run that actually continues.
"""

import csv
import logging
import os
from typing import Dict, List, Optional

_logger = logging.getLogger(__name__)


class MetricsLogger:
    """Append metric rows to CSV and, optionally, TensorBoard scalars.

    Attributes:
        csv_path: The CSV file.
        history: Rows logged so far (including those read back on resume).
    """

    def __init__(self, run_dir: str, tensorboard: bool = True, resume_step: Optional[int] = None):
        """Open the outputs.

        Args:
            run_dir: Run folder (``metrics.csv`` and ``tb/`` go there).
            tensorboard: Also write TensorBoard event files.
            resume_step: When resuming, keep only CSV rows with ``step <= resume_step``.
        """
        self.csv_path = os.path.join(run_dir, 'metrics.csv')
        self.history: List[Dict[str, float]] = []
        self._fields: Optional[List[str]] = None
        if resume_step is not None and os.path.isfile(self.csv_path):
            self._truncate(resume_step)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when used
            self._writer = SummaryWriter(os.path.join(run_dir, 'tb'),
                                         purge_step=None if resume_step is None
                                         else resume_step + 1)

    def _truncate(self, resume_step: int) -> None:
        """Keep the rows up to ``resume_step`` and read them into ``history``."""
        with open(self.csv_path, newline='', encoding='utf-8') as stream:
            reader = csv.DictReader(stream)
            self._fields = reader.fieldnames
            rows = [row for row in reader if int(float(row['step'])) <= resume_step]
        self.history = [{k: float(v) for k, v in row.items() if v != ''} for row in rows]
        with open(self.csv_path, 'w', newline='', encoding='utf-8') as stream:
            writer = csv.DictWriter(stream, self._fields)
            writer.writeheader()
            writer.writerows(rows)

    def log(self, step: int, metrics: Dict[str, float]) -> None:
        """Write one row (``step`` plus ``metrics``).

        Args:
            step: Optimiser step.
            metrics: Name -> value; keys unknown to the CSV header are kept for TensorBoard
                and the in-memory history only.
        """
        row = dict(metrics, step=step)
        self.history.append(row)
        new_file = not os.path.isfile(self.csv_path)
        if self._fields is None:
            self._fields = ['step'] + sorted(k for k in metrics)
        with open(self.csv_path, 'a', newline='', encoding='utf-8') as stream:
            writer = csv.DictWriter(stream, self._fields, extrasaction='ignore')
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()
