"""Document (and query) compressors: token states -> at most `budget` vectors."""
