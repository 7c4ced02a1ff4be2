"""Evaluation of Vanishing Depth features and predictions against classical baselines.

One concept per module: depth-completion metrics, sparse input sampling, completion baselines,
the completion protocol, rigid registration, pose metrics, feature matching, the pose protocol,
segmentation metrics and the markdown/PNG report writer.
"""
