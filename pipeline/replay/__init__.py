"""Embedded replay: every stage in one process over recorded files, and its reports."""
