"""Loop-based numpy references of the derivations in ../shared/seeds: readable first, one loop per index."""
