"""Reusable widgets: heatmaps, curves, result tables."""
