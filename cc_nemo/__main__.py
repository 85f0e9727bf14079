from cc_nemo.cli import main

main()
