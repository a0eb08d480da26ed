"""The version of pyro_emorl (recorded in every checkpoint)."""

__version__ = "0.2.0"
