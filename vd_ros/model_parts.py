"""One set of a model's outputs in one or two ONNX Runtime sessions, and a staged call's result.

:class:`SubGraph` holds the session of a sub-graph (``vd_ros.graph_prune``), or the early and
the late part of one (``vd_ros.graph_split``); :meth:`SubGraph.start` runs the early part and
returns :class:`StagedOutputs`, whose :meth:`StagedOutputs.complete` runs the late part, in any
thread.
"""

import time

import onnxruntime as ort


class StagedOutputs:
    """The outputs of one :meth:`VDModel.run_staged` call, the late part still to run.

    Attributes:
        early: Output name -> array, computed by the first part (all of them when the call
            was not split).
        early_s: Wall seconds of the first part.
    """

    def __init__(self, early: dict, early_s: float, late: ort.InferenceSession = None,
                 late_feeds: dict = None, late_names=()):
        """Keep the first part's outputs and what the late part reads."""
        self.early, self.early_s = early, early_s
        self._late, self._feeds, self._names = late, late_feeds, list(late_names)

    @property
    def split(self) -> bool:
        """Whether a late part remains to run."""
        return self._late is not None

    def complete(self) -> dict:
        """Run the late part (if any) and return every output asked for, name -> array."""
        if self._late is None:
            return dict(self.early)
        late = dict(zip(self._names, self._late.run(self._names, self._feeds)))
        return {**self.early, **late}


class SubGraph:
    """The session(s) of one set of outputs: one session, or an early and a late part.

    Attributes:
        early: Session of the (first) part.
        early_names: The outputs it is asked for (with a late part, the cut tensors too).
        late: Session of the completion head's part, or None.
        late_inputs: The late part's inputs (graph inputs and cut tensors).
        late_names: The outputs the late part computes.
    """

    def __init__(self, early: ort.InferenceSession, early_names, late=None, late_inputs=(),
                 late_names=()):
        """Keep the parts."""
        self.early, self.early_names = early, list(early_names)
        self.late, self.late_inputs, self.late_names = late, list(late_inputs), list(late_names)

    def start(self, feeds: dict, names) -> StagedOutputs:
        """Run the early part on ``feeds``; the result's ``complete`` runs the late one."""
        started = time.perf_counter()
        values = dict(zip(self.early_names, self.early.run(self.early_names, feeds)))
        early_s = time.perf_counter() - started
        if self.late is None:
            return StagedOutputs(values, early_s)
        late_feeds = {name: feeds[name] if name in feeds else values[name]
                      for name in self.late_inputs}
        return StagedOutputs({name: values[name] for name in names if name in values}, early_s,
                             self.late, late_feeds, self.late_names)
