"""One module per ``foveate`` subcommand, found automatically.

A command module defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Add a module here to add
a subcommand; nothing else needs editing.
"""
