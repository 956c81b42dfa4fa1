"""The counter: the cashier page, the counter actions shared with the POS API, and the public claim page."""
