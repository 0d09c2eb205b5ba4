"""Networks and data: X-ReID, datasets, training and evaluation. Imports nothing of ``pipeline``."""
