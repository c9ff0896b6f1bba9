"""One module per command: argv -> one validated config -> one plain function (pyproject.toml names them)."""
