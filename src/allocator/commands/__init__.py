"""The modules behind ``allocator COMMAND``, one per command.

:data:`allocator.cli.COMMANDS` lists them; each defines ``add_arguments(parser)``
and ``run(args) -> int``. ``allocator bench`` reads :data:`allocator.bench.TARGETS`
the same way.
"""
