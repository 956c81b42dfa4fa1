"""Bot handlers, one module per topic; each exposes register(bot)."""
