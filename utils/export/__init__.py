"""Exporting the inference network (ONNX, OpenVINO IR) for the torch-free engines of
utils.inference.exported: which graphs a config needs (plan) and the checked export (exporter)."""
