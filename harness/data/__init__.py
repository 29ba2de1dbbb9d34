"""Corpus and prompt sets (bundled files live here too) and their tokenization."""
