"""The web console (owners, marketers, cashiers), the public claim page and the POS JSON API."""
