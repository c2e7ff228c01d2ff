"""Build: Core ML conversion, compression variants, the fast palettizer and the content-addressed artifact store."""
