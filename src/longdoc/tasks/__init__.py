"""Per-task logic shared by every family: labels, metrics, and how each family is trained and read."""
