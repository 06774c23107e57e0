"""Turn JSONL corpora into the original's .bin/.idx indexed datasets."""
