"""Prediction for people and programs: Predictor API, CLI, ONNX export."""
