"""One module per ``xreid`` subcommand; each exposes ``register(subparsers)``."""
