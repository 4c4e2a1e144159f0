"""Computation for the CNN dashboard: data, models, training, evaluation. No UI here."""
