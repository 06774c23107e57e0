"""Text generation and the text-generation server."""
