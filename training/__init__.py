"""Training side of vd_ros: the Vanishing Depth model, its self-supervised objective and data.

Uses torch and timm; the runtime package ``vd_ros`` never imports anything from here.
"""
