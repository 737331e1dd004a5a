"""lrltool: adapt small multilingual language models to low-resource languages, and measure it."""

__version__ = "0.1.0"
