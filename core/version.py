"""The one place the release version is written: pyproject.toml reads it (``[tool.setuptools.dynamic]``),
``dvcgw --version`` prints it, the OpenAPI document's ``info.version`` carries it, and
tests/ship checks that CHANGELOG.md's newest release heading names it."""

__version__ = "0.1.0"
