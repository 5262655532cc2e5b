"""Tests of the command-line tools (pacs.tools)."""
