"""Vocabulary every part shares: the environment fingerprint's fields and key, sample statistics.

Imports nothing else of lowbit (nor torch or triton), so any part may use it.
"""
