"""raybatch: batch ML data jobs (clean, generate, translate, summarize, augment) on Ray."""

__version__ = "0.1.0"
