"""The version of tokenlm, in a module that imports nothing.

Low layers (checkpoint I/O, backends) read it from here instead of from the package's top level, so that writing a
checkpoint never pulls the user API (``tokenlm.api``) in underneath itself. ``pyproject.toml`` reads the same value
(``[tool.setuptools.dynamic]``), so there is one place to change it.
"""

__version__ = "0.1.0"
