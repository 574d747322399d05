"""One module per op (or family of ops). Each module defines SPECS (a list of OpSpec) and FORMULAS (a list of
Formula rows for the main job's table); ``cnn_gradcheck.registry`` discovers them, so a new op needs no edit elsewhere."""
