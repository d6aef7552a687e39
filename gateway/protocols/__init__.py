"""Wire types and codecs of the protocols the gateway speaks (no I/O): fronts and adapters share them."""
