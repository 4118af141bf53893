"""Gymnasium, vector, SB3 and PettingZoo environments over the exchange and its population."""
