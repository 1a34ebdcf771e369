"""Tests of procvlm.eval (a package so that test_metrics.py does not clash with tests/annotate/)."""
