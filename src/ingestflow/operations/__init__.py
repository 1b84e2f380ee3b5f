"""What ingestflow does on request, written once for every face: the CLI and the HTTP API
(and the provider callbacks) call these functions, so they cannot disagree."""
