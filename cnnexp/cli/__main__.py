from cnnexp.cli import main

main()
