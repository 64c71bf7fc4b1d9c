"""Ferry's operations console (Textual). Talks to the engine only through console.backend."""
