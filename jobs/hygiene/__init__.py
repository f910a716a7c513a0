"""Corpus hygiene: plain functions behind the clean, langid, redact and dedup stages (no Ray)."""
