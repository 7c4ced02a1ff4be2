"""Benchmarks of vd_ros that print figures and ratios (``make bench``); not tests."""
