"""Beam pipelines and the ``llama`` command line."""
