"""The loyalty domain: plain functions that take a Session. No Flask, Redis or HTTP here.

Every write of points goes through loyalty.ledger; callers own the transaction (they commit).
"""
