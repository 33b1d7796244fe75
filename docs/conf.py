"""Sphinx configuration (``make docs``)."""

project = "allocator"
author = "allocator developers"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
html_theme = "furo"
exclude_patterns = ["_build"]
