# Shim for Beam's --setup_file (Dataflow workers install this package); the metadata is in pyproject.toml.
from setuptools import setup

setup()
