from tichdiem.cli import main

main()
