"""One set of a model's outputs in one or more ONNX Runtime sessions, and a staged call's result.

:class:`SubGraph` holds the session of a sub-graph (``vd_ros.graph_prune``), or the early part
and the late parts (the heads) of one (``vd_ros.graph_split``); :meth:`SubGraph.start` runs the
early part and returns :class:`StagedOutputs`, whose :meth:`StagedOutputs.batches` runs the
late parts, in any thread.
"""

import time
from typing import Iterator, List, NamedTuple

import onnxruntime as ort

from vd_ros.graph_split import COMPLETION_HEAD


class LatePart(NamedTuple):
    """The session of one head cut off the early part.

    Attributes:
        session: Its ONNX Runtime session.
        inputs: What it reads: graph inputs and early outputs (cut tensors).
        names: The outputs it computes.
    """

    session: ort.InferenceSession
    inputs: List[str]
    names: List[str]


class StagedOutputs:
    """The outputs of one :meth:`VDModel.run_staged` call, the late parts still to run.

    Attributes:
        early: Output name -> array, computed by the first part (all of them when the call
            was not split).
        early_s: Wall seconds of the first part.
        late_s: Wall seconds of the late parts run so far.
    """

    def __init__(self, early: dict, early_s: float, lates=(), late_feeds: dict = None):
        """Keep the first part's outputs and what the late parts (:class:`LatePart`) read."""
        self.early, self.early_s, self.late_s = early, early_s, 0.0
        self._lates, self._feeds = list(lates), late_feeds or {}

    @property
    def split(self) -> bool:
        """Whether late parts remain to run."""
        return bool(self._lates)

    def _run_late(self, late: LatePart) -> dict:
        started = time.perf_counter()
        values = late.session.run(late.names, {name: self._feeds[name] for name in late.inputs})
        self.late_s += time.perf_counter() - started
        return dict(zip(late.names, values))

    def batches(self) -> Iterator[dict]:
        """Run the late parts in turn; yield the outputs in the order they are to be published.

        The first batch holds the early outputs and the completion head's; each later head's
        outputs come as a batch of their own, computed only when asked for (after the previous
        batch is published). Each yields output name -> array.
        """
        batch = dict(self.early)
        for late in self._lates:
            if batch and late.names[0] not in COMPLETION_HEAD:
                yield batch
                batch = {}
            batch.update(self._run_late(late))
        if batch or not self._lates:
            yield batch

    def complete(self) -> dict:
        """Run every late part and return every output asked for, name -> array."""
        result = {}
        for batch in self.batches():
            result.update(batch)
        return result


class SubGraph:
    """The session(s) of one set of outputs: one session, or an early part and late parts.

    Attributes:
        early: Session of the (first) part.
        early_names: The outputs it is asked for (with late parts, the cut tensors too).
        lates: The :class:`LatePart` of each head cut off, in the order they run.
    """

    def __init__(self, early: ort.InferenceSession, early_names, lates=()):
        """Keep the parts."""
        self.early, self.early_names, self.lates = early, list(early_names), list(lates)

    def start(self, feeds: dict, names) -> StagedOutputs:
        """Run the early part on ``feeds``; the result's ``batches`` runs the late ones."""
        started = time.perf_counter()
        values = dict(zip(self.early_names, self.early.run(self.early_names, feeds)))
        early_s = time.perf_counter() - started
        if not self.lates:
            return StagedOutputs(values, early_s)
        late_feeds = {name: feeds[name] if name in feeds else values[name]
                      for late in self.lates for name in late.inputs}
        return StagedOutputs({name: values[name] for name in names if name in values}, early_s,
                             self.lates, late_feeds)
