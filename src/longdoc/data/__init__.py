"""Datasets for long-document classification.

Submodules are imported on demand (``from longdoc.data.kernel_docs import ensure_kernel_docs``)
so that ``python -m longdoc.data.<module>`` runs each one without importing it twice.
"""
