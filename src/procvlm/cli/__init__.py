"""The ``procvlm`` command: thin subcommands that parse arguments and call the library."""
