"""The ``irec`` command line: ``codec`` (compress, decompress, info) and ``train`` (train, ship)."""
