"""Every checkpoint format of training: one writer and one checked reader each.

- ``formats``: the format constants, the errors and ``load_checked`` (the one
  load-check-raise every reader goes through);
- ``files``: atomic writes, keep-last-N + best (``CheckpointManager``), ``weights_only`` loading;
- ``pretrain``: pretraining checkpoints (``vd_ros.pretrain/1``);
- ``model``: a model built from its config with a checkpoint's weights, config and shapes
  checked; the steps behind a checkpoint (warm starts included);
- ``completion``: completion-head checkpoints (``vd_ros.completion/1``);
- ``heads``: segmentation heads files (``vd_ros-seg-head-1``);
- ``weights``: the float16 weights-only copy of a pretraining checkpoint.
"""
