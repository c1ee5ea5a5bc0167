"""Heatmaps that show why the model decided, and the evidence that they are faithful."""
