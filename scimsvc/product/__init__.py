"""How the product reads and tells things: pure functions, no I/O."""
