from ingestflow.cli.main import app

app(prog_name="ingestflow")
