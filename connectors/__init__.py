"""Venue connectors: everything venue-specific (wire decoding, connections, execution, signing,
simulators). Each venue is a subpackage with the same module names."""
