"""Data sources for ``lrltool fetch``: one module per source, registered in ``SOURCES``."""
