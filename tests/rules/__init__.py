"""The rules every loss keeps, run over the table of built-in losses (rules/cases.py)."""
