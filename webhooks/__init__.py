"""HTTP intake from Zalo: signature check, typed parsing, insert-or-skip dedupe, enqueue after commit."""
