"""The training engine: what every training script shares besides model, loss and data.

One concept per module:

- ``progress``: where a run stands (``Progress``), the progress bar, the running loss;
- ``divergence``: the non-finite step guard and ``TrainingDiverged``;
- ``completion_loop``, ``completion_batch``, ``completion_val``: the completion-head loop
  (``train_completion`` and ``adapt``);
- ``config``: default.yaml + override files + ``key=value`` dotlist, resolved-config saving;
- ``sample_stream``: resumable, rank-sharded weighted sampler and seeded per-sample transform;
- ``batch``: a collated batch -> (rgb, masked PDE, target, removed mask) for the loss;
- ``schedule``: learning-rate schedules (one-cycle as the paper; warm-up + cosine over steps
  or over a time budget);
- ``rng_state``: capture and restore python/numpy/torch/cuda RNG states as tensors;
- ``distributed``: torchrun environment, process group, rank helpers, the device choice;
- ``flops``: measured FLOPs per training step and MFU against a peak table;
- ``metrics_log``: CSV + TensorBoard metrics;
- ``plots``: the RGB / input / prediction / target / error panel and the loss curve.

Checkpoints (atomic writes, keep-last-N + best, every format) live in ``training.checkpoint``.
"""
