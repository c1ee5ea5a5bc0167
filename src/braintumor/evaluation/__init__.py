"""Metrics, calibration and the evaluation report."""
