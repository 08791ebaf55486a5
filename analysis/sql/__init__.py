"""SQL texts, one module per backend, each exposing a `Queries` instance named QUERIES."""
