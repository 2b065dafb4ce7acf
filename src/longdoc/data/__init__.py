"""Reading and cutting documents: labelled files, summary pairs, the sentence splitter, segments.

The set builders (kernel_docs, manpages, ...) are in `longdoc.datasets`; their old names here
(``longdoc.data.kernel_docs``...) still import, as the same modules.
"""
