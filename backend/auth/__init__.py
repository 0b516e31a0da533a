"""Accounts, devices, tokens and guards."""
