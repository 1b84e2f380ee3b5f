"""External services (parsers, embedders) behind one protocol each, and the router."""
