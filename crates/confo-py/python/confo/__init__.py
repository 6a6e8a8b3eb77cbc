"""confo: distributed configuration manager, on a Rust core.

A drop-in successor of the Python ``confo`` package: ``from confo.Confo import Confo`` and
``import confo.Backends as BE`` work as before. See ``confo.Confo.Confo`` for the API.
"""

__version__ = "0.2.0"
