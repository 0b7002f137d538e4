from specscope.cli.app import main

main()
