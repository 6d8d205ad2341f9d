"""(being written)"""


def add_subcommands(sub) -> None:
    """Register this module's `bertlab` subcommands on the argparse subparsers `sub`."""
