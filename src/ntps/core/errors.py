"""Errors raised on bad input, each naming the problem for the user."""


class NtpsInputError(ValueError):
    """Input that the NTPS computation cannot use: empty data, bad labels, bad k, NaN states."""
