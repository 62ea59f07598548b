"""Regime models behind one interface: rules, HMM, Markov switching, jump, change points."""
