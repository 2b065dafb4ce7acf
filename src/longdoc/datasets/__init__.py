"""Builders of real document sets (kernel-docs, man pages, man-sections, postgres-docs...) from
Debian packages, each written as train/dev/test JSON-lines files with a manifest and checksums.

Submodules are imported on demand (``from longdoc.datasets.kernel_docs import ensure_kernel_docs``)
so that ``python -m longdoc.datasets.<module>`` runs each one without importing it twice.
"""
