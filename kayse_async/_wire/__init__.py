"""Sans-I/O wire layer: field tables, typed parameters, the converter, the protocol and rate-limit headers."""
