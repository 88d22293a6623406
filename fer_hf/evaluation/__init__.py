"""Measuring models: the evaluation report, the metric functions and their `evaluate` modules, temperature
calibration and the speed / size profile."""
