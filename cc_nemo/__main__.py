from cc_nemo.cli.main import main

main()
