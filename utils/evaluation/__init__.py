"""Evaluation of saliency maps: metrics, pairing of maps with masks, parallel scoring, result
tables and curves. ``run/Eval.py`` calls :func:`evaluate_config`."""
