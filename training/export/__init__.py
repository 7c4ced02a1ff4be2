"""From a trained model to the ONNX file the node runs, and back.

- ``exporter``: ``ExportGraph`` (encode once; decoder depth, segmentation and completion heads)
  and ``export_onnx`` (fixed-size trace, contract metadata, checked, atomic);
- ``contract``: the model contract of an export and its provenance (``training`` object);
- ``inputs``: the model and heads ``python -m training.export_onnx`` exports;
- ``weight_storage``: large weights stored as float16, computed in float32, and restored;
- ``recover``: the modules and checkpoints back from an exported file (``python -m
  training.onnx_recover``);
- ``quantize``: static int8 (QDQ) of an exported file, written only when the held-out accuracy
  gates pass (``python -m training.export.quantize``).
"""
