"""Brug's domain: the referral aggregate and the rules it keeps, with no I/O.

It imports only ``contracts`` (the code lists) and the standard library; services load a
referral, ask it what an action does, and store and publish what it answers.
"""
