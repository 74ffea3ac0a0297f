"""Protocols: Protocol/Factory and the protocol implementations (being built)."""
