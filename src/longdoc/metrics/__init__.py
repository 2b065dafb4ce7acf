"""Metrics computed at the data level (no model, no torch): plain numbers from predictions and gold."""
