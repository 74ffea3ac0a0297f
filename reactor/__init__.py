"""The reactor: the event loop, its transports, time and testing fakes."""
