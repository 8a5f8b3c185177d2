"""linkpronto: consultation links that are proven to work before anyone receives them."""

__version__ = "0.3.2"
