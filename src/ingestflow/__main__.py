from ingestflow.cli.main import main

main()
